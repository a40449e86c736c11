//! The user data header (GSM 03.40 §9.2.3.24): concatenation and application port addressing
//! information elements; any other element is kept raw.
//!
//! A UDH sits at the start of `short_message` (or `message_payload`) when esm_class has UDHI
//! (0x40) set: one length octet (UDHL), then elements of `IEI, IEL, data`.

use bytes::BufMut;

use super::SmsError;

/// IEI of concatenation with an 8-bit reference (GSM 03.40 §9.2.3.24.1).
pub const IEI_CONCAT_8: u8 = 0x00;
/// IEI of application port addressing with 8-bit ports (GSM 03.40 §9.2.3.24.3).
pub const IEI_PORTS_8: u8 = 0x04;
/// IEI of application port addressing with 16-bit ports (GSM 03.40 §9.2.3.24.4).
pub const IEI_PORTS_16: u8 = 0x05;
/// IEI of concatenation with a 16-bit reference (GSM 03.40 §9.2.3.24.8).
pub const IEI_CONCAT_16: u8 = 0x08;

/// Length of the concatenation UDH with an 8-bit reference, UDHL included.
pub const CONCAT_8_LEN: usize = 6;
/// Length of the concatenation UDH with a 16-bit reference, UDHL included.
pub const CONCAT_16_LEN: usize = 7;

/// A parsed user data header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Udh {
    /// The information elements in the order they appeared.
    pub elements: Vec<InformationElement>,
}

/// One information element of a UDH.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InformationElement {
    /// Concatenated short message, 8-bit reference (IEI 0x00).
    Concat8 {
        /// The reference shared by all parts of one message.
        reference: u8,
        /// How many parts the message has (1-255).
        total: u8,
        /// This part's number, starting at 1.
        seq: u8,
    },
    /// Concatenated short message, 16-bit reference (IEI 0x08).
    Concat16 {
        /// The reference shared by all parts of one message.
        reference: u16,
        /// How many parts the message has (1-255).
        total: u8,
        /// This part's number, starting at 1.
        seq: u8,
    },
    /// Application port addressing, 8-bit ports (IEI 0x04).
    Ports8 {
        /// The destination port.
        destination: u8,
        /// The originator port.
        originator: u8,
    },
    /// Application port addressing, 16-bit ports (IEI 0x05), e.g. WAP push 2948 from 9200.
    Ports16 {
        /// The destination port.
        destination: u16,
        /// The originator port.
        originator: u16,
    },
    /// Any other element, or a known one whose length or values are invalid: GSM 03.40
    /// §9.2.3.24.1 tells a receiver to ignore, for example, a concatenation element with a
    /// total of zero or a sequence number above the total, so it is kept but not acted on.
    Other {
        /// The element identifier.
        iei: u8,
        /// The element's data, without IEI and IEL.
        data: Vec<u8>,
    },
}

/// Where a part sits in a concatenated message, from a UDH or from the SAR TLVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// The reference shared by all parts (an 8-bit one widened).
    pub reference: u16,
    /// How many parts the message has (1-255).
    pub total: u8,
    /// This part's number, 1..=total.
    pub seq: u8,
    /// Where the information came from.
    pub kind: ConcatKind,
}

/// Which concatenation mechanism numbered a part. Parts of one message use one mechanism, and
/// an 8-bit and a 16-bit reference of the same value are different messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConcatKind {
    /// UDH IEI 0x00.
    Udh8,
    /// UDH IEI 0x08.
    Udh16,
    /// The `sar_*` TLVs.
    Sar,
}

/// Application ports, from either port addressing element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    /// The destination port.
    pub destination: u16,
    /// The originator port.
    pub originator: u16,
}

impl InformationElement {
    /// The element identifier.
    pub fn iei(&self) -> u8 {
        match self {
            InformationElement::Concat8 { .. } => IEI_CONCAT_8,
            InformationElement::Concat16 { .. } => IEI_CONCAT_16,
            InformationElement::Ports8 { .. } => IEI_PORTS_8,
            InformationElement::Ports16 { .. } => IEI_PORTS_16,
            InformationElement::Other { iei, .. } => *iei,
        }
    }

    /// The element's encoded length, IEI and IEL included.
    pub fn encoded_len(&self) -> usize {
        2 + match self {
            InformationElement::Concat8 { .. } => 3,
            InformationElement::Concat16 { .. } => 4,
            InformationElement::Ports8 { .. } => 2,
            InformationElement::Ports16 { .. } => 4,
            InformationElement::Other { data, .. } => data.len(),
        }
    }

    /// Writes IEI, IEL and data.
    fn encode_into<B: BufMut>(&self, out: &mut B) {
        out.put_u8(self.iei());
        // Invariant: the data fits an octet; `Udh::encode_into` leaves out any element whose
        // encoded length would take the header past 255 octets.
        out.put_u8((self.encoded_len() - 2) as u8);
        match self {
            InformationElement::Concat8 {
                reference,
                total,
                seq,
            } => out.put_slice(&[*reference, *total, *seq]),
            InformationElement::Concat16 {
                reference,
                total,
                seq,
            } => {
                out.put_u16(*reference);
                out.put_slice(&[*total, *seq]);
            }
            InformationElement::Ports8 {
                destination,
                originator,
            } => out.put_slice(&[*destination, *originator]),
            InformationElement::Ports16 {
                destination,
                originator,
            } => {
                out.put_u16(*destination);
                out.put_u16(*originator);
            }
            InformationElement::Other { data, .. } => out.put_slice(data),
        }
    }

    /// Builds a known element from its IEI and data, or keeps it raw when the length or the
    /// values are not valid for that element.
    fn from_raw(iei: u8, data: &[u8]) -> InformationElement {
        // GSM 03.40 §9.2.3.24.1 / .8: total 0, seq 0 or seq > total make the element void.
        let valid_concat = |total: u8, seq: u8| total != 0 && seq != 0 && seq <= total;
        match (iei, data) {
            (IEI_CONCAT_8, &[reference, total, seq]) if valid_concat(total, seq) => {
                InformationElement::Concat8 {
                    reference,
                    total,
                    seq,
                }
            }
            (IEI_CONCAT_16, &[hi, lo, total, seq]) if valid_concat(total, seq) => {
                InformationElement::Concat16 {
                    reference: u16::from_be_bytes([hi, lo]),
                    total,
                    seq,
                }
            }
            (IEI_PORTS_8, &[destination, originator]) => InformationElement::Ports8 {
                destination,
                originator,
            },
            (IEI_PORTS_16, &[dh, dl, oh, ol]) => InformationElement::Ports16 {
                destination: u16::from_be_bytes([dh, dl]),
                originator: u16::from_be_bytes([oh, ol]),
            },
            _ => InformationElement::Other {
                iei,
                data: data.to_vec(),
            },
        }
    }
}

impl Udh {
    /// The concatenation information, if any. When the element is repeated the last one counts
    /// (GSM 03.40 §9.2.3.24: a receiver uses the last occurrence).
    pub fn concat_info(&self) -> Option<Concat> {
        self.elements.iter().rev().find_map(|e| match *e {
            InformationElement::Concat8 {
                reference,
                total,
                seq,
            } => Some(Concat {
                reference: u16::from(reference),
                total,
                seq,
                kind: ConcatKind::Udh8,
            }),
            InformationElement::Concat16 {
                reference,
                total,
                seq,
            } => Some(Concat {
                reference,
                total,
                seq,
                kind: ConcatKind::Udh16,
            }),
            _ => None,
        })
    }

    /// The application ports, if any (the last port element counts).
    pub fn ports(&self) -> Option<Ports> {
        self.elements.iter().rev().find_map(|e| match *e {
            InformationElement::Ports8 {
                destination,
                originator,
            } => Some(Ports {
                destination: u16::from(destination),
                originator: u16::from(originator),
            }),
            InformationElement::Ports16 {
                destination,
                originator,
            } => Some(Ports {
                destination,
                originator,
            }),
            _ => None,
        })
    }

    /// The encoded length, UDHL included.
    pub fn encoded_len(&self) -> usize {
        1 + self
            .elements
            .iter()
            .map(InformationElement::encoded_len)
            .sum::<usize>()
    }

    /// Writes UDHL and the elements. A header must fit its one-octet length, so elements that
    /// would take it past 255 octets are left out.
    pub fn encode_into<B: BufMut>(&self, out: &mut B) {
        let mut kept = 0;
        let mut len = 0usize;
        for e in &self.elements {
            if len + e.encoded_len() > usize::from(u8::MAX) {
                break;
            }
            len += e.encoded_len();
            kept += 1;
        }
        out.put_u8(len as u8);
        for e in &self.elements[..kept] {
            e.encode_into(out);
        }
    }

    /// The encoded header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

/// Writes the 6-octet concatenation header with an 8-bit reference: `05 00 03 RR TT SS`.
pub(crate) fn put_concat8(out: &mut Vec<u8>, reference: u8, total: u8, seq: u8) {
    out.extend_from_slice(&[0x05, IEI_CONCAT_8, 0x03, reference, total, seq]);
}

/// Writes the 7-octet concatenation header with a 16-bit reference: `06 08 04 RH RL TT SS`.
pub(crate) fn put_concat16(out: &mut Vec<u8>, reference: u16, total: u8, seq: u8) {
    let [hi, lo] = reference.to_be_bytes();
    out.extend_from_slice(&[0x06, IEI_CONCAT_16, 0x04, hi, lo, total, seq]);
}

/// Parses the UDH at the start of `data` and returns it with the rest (the user data).
///
/// Never panics. Errors only when the structure is broken: no UDHL octet, a UDHL longer than
/// the data, or an element overrunning the header. Elements it does not know, or known ones
/// with invalid contents, are kept as [`InformationElement::Other`].
pub fn parse_udh(data: &[u8]) -> Result<(Udh, &[u8]), SmsError> {
    let (&udhl, after) = data.split_first().ok_or(SmsError::MalformedUdh {
        reason: "no header length octet",
    })?;
    let udhl = usize::from(udhl);
    if udhl > after.len() {
        return Err(SmsError::MalformedUdh {
            reason: "header length exceeds the message",
        });
    }
    let (mut header, rest) = after.split_at(udhl);
    let mut elements = Vec::new();
    while !header.is_empty() {
        let [iei, iel, tail @ ..] = header else {
            return Err(SmsError::MalformedUdh {
                reason: "truncated information element",
            });
        };
        let iel = usize::from(*iel);
        if iel > tail.len() {
            return Err(SmsError::MalformedUdh {
                reason: "information element overruns the header",
            });
        }
        let (body, next) = tail.split_at(iel);
        elements.push(InformationElement::from_raw(*iei, body));
        header = next;
    }
    Ok((Udh { elements }, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::pdu::hex::decode(s).unwrap()
    }

    #[test]
    fn parses_8_bit_concatenation() {
        let data = [&hex("05 00 03 42 02 01")[..], b"AAA"].concat();
        let (udh, rest) = parse_udh(&data).unwrap();
        assert_eq!(rest, b"AAA");
        assert_eq!(
            udh.concat_info(),
            Some(Concat {
                reference: 0x42,
                total: 2,
                seq: 1,
                kind: ConcatKind::Udh8
            })
        );
        assert_eq!(udh.to_bytes(), hex("05 00 03 42 02 01"));
    }

    #[test]
    fn parses_16_bit_concatenation() {
        let data = hex("06 08 04 12 34 03 02");
        let (udh, rest) = parse_udh(&data).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            udh.elements,
            vec![InformationElement::Concat16 {
                reference: 0x1234,
                total: 3,
                seq: 2
            }]
        );
        assert_eq!(udh.to_bytes(), data);
        let mut written = Vec::new();
        put_concat16(&mut written, 0x1234, 3, 2);
        assert_eq!(written, data);
    }

    #[test]
    fn parses_16_bit_port_addressing() {
        let data = hex("06 05 04 0B 84 23 F0");
        let (udh, _) = parse_udh(&data).unwrap();
        assert_eq!(
            udh.ports(),
            Some(Ports {
                destination: 2948,
                originator: 9200
            })
        );
        assert_eq!(udh.to_bytes(), data);
    }

    #[test]
    fn parses_8_bit_port_addressing() {
        let data = hex("04 04 02 10 20");
        let (udh, _) = parse_udh(&data).unwrap();
        assert_eq!(
            udh.elements,
            vec![InformationElement::Ports8 {
                destination: 0x10,
                originator: 0x20
            }]
        );
        assert_eq!(udh.to_bytes(), data);
    }

    #[test]
    fn parses_ports_and_concatenation_in_one_header() {
        let data = hex("0B 05 04 0B 84 23 F0 00 03 07 02 02 FF");
        let (udh, rest) = parse_udh(&data).unwrap();
        assert_eq!(rest, &[0xFF]);
        assert_eq!(udh.ports().map(|p| p.destination), Some(2948));
        assert_eq!(
            udh.concat_info().map(|c| (c.reference, c.seq)),
            Some((7, 2))
        );
        assert_eq!(udh.encoded_len(), 12);
    }

    #[test]
    fn keeps_unknown_elements_raw() {
        let data = hex("05 24 01 01 70 00");
        let (udh, _) = parse_udh(&data).unwrap();
        assert_eq!(
            udh.elements,
            vec![
                InformationElement::Other {
                    iei: 0x24,
                    data: vec![1]
                },
                InformationElement::Other {
                    iei: 0x70,
                    data: vec![]
                }
            ]
        );
        assert_eq!(udh.to_bytes(), data);
    }

    #[test]
    fn ignores_concatenation_with_zero_total_or_sequence_past_total() {
        for bad in [
            "05 00 03 01 00 01",
            "05 00 03 01 02 00",
            "05 00 03 01 02 03",
            "06 00 04 01 02 01 00",
        ] {
            let (udh, _) = parse_udh(&hex(bad)).unwrap();
            assert_eq!(udh.concat_info(), None, "{bad}");
            assert!(matches!(udh.elements[0], InformationElement::Other { .. }));
        }
    }

    #[test]
    fn rejects_broken_structure() {
        for bad in ["", "05 00 03 01", "02 00", "03 00 05 01", "01 00"] {
            assert!(
                matches!(parse_udh(&hex(bad)), Err(SmsError::MalformedUdh { .. })),
                "{bad:?}"
            );
        }
        let empty = hex("00 41");
        let (udh, rest) = parse_udh(&empty).unwrap();
        assert!(udh.elements.is_empty());
        assert_eq!(rest, b"A");
    }
}
