//! Splitting a message into the parts that go out as PDUs.
//!
//! Each part's octets are ready for `short_message` (or the `message_payload` TLV), header
//! included; the caller sets esm_class UDHI when [`Part::udhi`] says so and turns
//! [`Part::sar`] into the three `sar_*` TLVs. All parts share one buffer allocation.

use std::ops::Range;

use bytes::Bytes;

use super::SmsError;
use super::charset;
use super::gsm;
use super::plan::{self, CarrierTextOptions, Cuts, Encoding, Plan, SegmentationMethod};
use super::udh::{self, CONCAT_8_LEN, CONCAT_16_LEN};

/// The values of the three SAR TLVs for one part (SMPP 3.4 §5.3.2.22-24), which must be sent
/// together and without a UDH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sar {
    /// `sar_msg_ref_num` (0x020C): the reference shared by all parts.
    pub ref_num: u16,
    /// `sar_total_segments` (0x020E): how many parts.
    pub total: u8,
    /// `sar_segment_seqnum` (0x020F): this part's number, from 1.
    pub seq: u8,
}

/// Which PDU field carries a part's octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadField {
    /// `short_message` (at most 254 octets; every part made here is far below that).
    ShortMessage,
    /// The `message_payload` TLV (0x0424), with `sm_length` 0.
    MessagePayload,
}

/// One PDU's worth of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Part {
    /// The octets to send, UDH first when [`Part::udhi`] is set.
    pub payload: Bytes,
    /// Whether the payload starts with a UDH, so esm_class must have UDHI (0x40) set
    /// (SMPP 3.4 §5.2.12).
    pub udhi: bool,
    /// The SAR TLV values, when the carrier splits with SAR.
    pub sar: Option<Sar>,
    /// The part's `data_coding`.
    pub data_coding: u8,
    /// Where the payload goes.
    pub field: PayloadField,
}

impl Part {
    /// The esm_class bits this part needs on top of the messaging mode and type: 0x40 (UDHI)
    /// or nothing.
    pub const fn esm_class_bits(&self) -> u8 {
        if self.udhi { 0x40 } else { 0x00 }
    }
}

/// A message split for one carrier: the plan it followed and its parts in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segments {
    /// The plan, as [`super::plan()`] reports it.
    pub plan: Plan,
    /// The parts, `plan.parts` of them, in sending order.
    pub parts: Vec<Part>,
}

/// Splits a text for a carrier. `reference` is the concatenation reference for this message,
/// from a [`super::ReferenceAllocator`] of the matching width; an 8-bit-reference UDH uses its
/// low octet, and a message that fits in one part does not use it at all.
///
/// Parts never split an escape pair or a surrogate pair, and each fits 140 octets of TP-UD.
/// Fails only with [`SmsError::TooManyParts`].
pub fn segment(
    text: &str,
    options: &CarrierTextOptions,
    reference: u16,
) -> Result<Segments, SmsError> {
    let mut cuts = Cuts::new(options.max_parts);
    let plan = plan::layout(text, options, &mut cuts)?;
    let count = usize::from(plan.parts);
    let header_len = header_len(options.segmentation, count);
    // Upper bound: two octets per unit covers UCS2; the 7-bit forms need at most one.
    let mut buf = Vec::with_capacity(plan.units * 2 + count * header_len);
    let mut ranges = Vec::with_capacity(count);

    let mut start = 0;
    for (i, end) in cuts.at.iter().copied().chain([text.len()]).enumerate() {
        let piece = &text[start..end];
        start = end;
        let seq = (i + 1) as u8;
        let part_start = buf.len();
        let sar = write_header(&mut buf, &plan, reference, seq);
        match plan.encoding {
            Encoding::Gsm7 if plan.packed => {
                gsm::encode_packed_into(piece, gsm::fill_bits(header_len), &mut buf);
            }
            Encoding::Gsm7 => gsm::encode_unpacked_into(piece, &mut buf),
            Encoding::Latin1 => charset::encode_latin1_into(piece, &mut buf),
            Encoding::Ascii => charset::encode_ascii_into(piece, &mut buf),
            Encoding::Ucs2 => charset::encode_ucs2_into(piece, &mut buf),
            // The planner never picks binary for text.
            Encoding::Binary => buf.extend_from_slice(piece.as_bytes()),
        }
        ranges.push((part_start..buf.len(), sar));
    }
    Ok(finish(buf, ranges, plan, header_len))
}

/// Splits 8-bit binary data (`data_coding` 4): 140 octets alone, 134 per part after an
/// 8-bit-reference UDH, 133 after a 16-bit one or with SAR. Fails only with
/// [`SmsError::TooManyParts`].
pub fn segment_binary(
    data: &[u8],
    options: &CarrierTextOptions,
    reference: u16,
) -> Result<Segments, SmsError> {
    let plan = plan::plan_binary(data.len(), options)?;
    let count = usize::from(plan.parts);
    let header_len = header_len(options.segmentation, count);
    let chunk = if count == 1 {
        data.len().max(1)
    } else {
        plan::multi_budget(Encoding::Binary, options.segmentation)
    };
    let mut buf = Vec::with_capacity(data.len() + count * header_len);
    let mut ranges = Vec::with_capacity(count);
    let mut chunks = data.chunks(chunk);
    for i in 0..count {
        let part_start = buf.len();
        let sar = write_header(&mut buf, &plan, reference, (i + 1) as u8);
        buf.extend_from_slice(chunks.next().unwrap_or_default());
        ranges.push((part_start..buf.len(), sar));
    }
    Ok(finish(buf, ranges, plan, header_len))
}

/// The UDH length each part carries.
fn header_len(method: SegmentationMethod, parts: usize) -> usize {
    match method {
        _ if parts <= 1 => 0,
        SegmentationMethod::Udh8 => CONCAT_8_LEN,
        SegmentationMethod::Udh16 => CONCAT_16_LEN,
        SegmentationMethod::Sar | SegmentationMethod::MessagePayload => 0,
    }
}

/// Writes the concatenation UDH for part `seq`, or returns its SAR values.
fn write_header(buf: &mut Vec<u8>, plan: &Plan, reference: u16, seq: u8) -> Option<Sar> {
    if plan.parts <= 1 {
        return None;
    }
    match plan.method {
        SegmentationMethod::Udh8 => {
            udh::put_concat8(buf, reference as u8, plan.parts, seq);
            None
        }
        SegmentationMethod::Udh16 => {
            udh::put_concat16(buf, reference, plan.parts, seq);
            None
        }
        SegmentationMethod::Sar => Some(Sar {
            ref_num: reference,
            total: plan.parts,
            seq,
        }),
        SegmentationMethod::MessagePayload => None,
    }
}

/// Turns the shared buffer into the parts, each a slice of it.
fn finish(
    buf: Vec<u8>,
    ranges: Vec<(Range<usize>, Option<Sar>)>,
    plan: Plan,
    header_len: usize,
) -> Segments {
    let all = Bytes::from(buf);
    let field = match plan.method {
        SegmentationMethod::MessagePayload => PayloadField::MessagePayload,
        _ => PayloadField::ShortMessage,
    };
    let parts = ranges
        .into_iter()
        .map(|(range, sar)| Part {
            payload: all.slice(range),
            udhi: header_len > 0,
            sar,
            data_coding: plan.data_coding,
            field,
        })
        .collect();
    Segments { plan, parts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::DefaultAlphabet;

    fn with(method: SegmentationMethod) -> CarrierTextOptions {
        CarrierTextOptions {
            segmentation: method,
            ..CarrierTextOptions::default()
        }
    }

    #[test]
    fn short_text_is_one_part_without_header() {
        let s = segment("Hello", &CarrierTextOptions::default(), 0x42).unwrap();
        assert_eq!(s.parts.len(), 1);
        let p = &s.parts[0];
        assert_eq!(&p.payload[..], b"\x48\x65\x6C\x6C\x6F");
        assert!(!p.udhi);
        assert_eq!(p.sar, None);
        assert_eq!(p.data_coding, 0);
        assert_eq!(p.field, PayloadField::ShortMessage);
    }

    #[test]
    fn first_part_of_a_long_text_matches_the_reference_vector() {
        // Reference §8 (seq=8): 153 'A' after UDH 05 00 03 42 02 01, sm_length 159. The
        // reference calls the text 160 characters long, but 160 septets fit one message; it
        // takes 161 to need two parts.
        assert_eq!(
            segment(&"A".repeat(160), &CarrierTextOptions::default(), 0x42)
                .unwrap()
                .parts
                .len(),
            1
        );
        let s = segment(&"A".repeat(161), &CarrierTextOptions::default(), 0x42).unwrap();
        assert_eq!(s.parts.len(), 2);
        let first = &s.parts[0];
        assert!(first.udhi);
        assert_eq!(first.esm_class_bits(), 0x40);
        assert_eq!(first.payload.len(), 159);
        assert_eq!(&first.payload[..6], &[0x05, 0x00, 0x03, 0x42, 0x02, 0x01]);
        assert!(first.payload[6..].iter().all(|&b| b == 0x41));
        assert_eq!(
            &s.parts[1].payload[..6],
            &[0x05, 0x00, 0x03, 0x42, 0x02, 0x02]
        );
        assert_eq!(s.parts[1].payload.len(), 6 + 8);
    }

    #[test]
    fn sixteen_bit_reference_header_matches_the_reference_vector() {
        let s = segment(&"B".repeat(400), &with(SegmentationMethod::Udh16), 0x1234).unwrap();
        assert_eq!(s.parts.len(), 3);
        assert_eq!(
            &s.parts[1].payload[..7],
            &[0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x02]
        );
        assert_eq!(s.parts[0].payload.len(), 7 + 152);
    }

    #[test]
    fn sar_parts_carry_tlv_values_and_no_header() {
        let s = segment(&"C".repeat(400), &with(SegmentationMethod::Sar), 0x1234).unwrap();
        assert_eq!(s.parts.len(), 3);
        for (i, p) in s.parts.iter().enumerate() {
            assert!(!p.udhi);
            assert_eq!(
                p.sar,
                Some(Sar {
                    ref_num: 0x1234,
                    total: 3,
                    seq: i as u8 + 1
                })
            );
        }
        assert_eq!(s.parts[0].payload.len(), 152);
    }

    #[test]
    fn message_payload_is_a_single_part_with_the_whole_text() {
        let s = segment(
            &"x".repeat(300),
            &with(SegmentationMethod::MessagePayload),
            1,
        )
        .unwrap();
        assert_eq!(s.parts.len(), 1);
        assert_eq!(s.parts[0].field, PayloadField::MessagePayload);
        assert_eq!(&s.parts[0].payload[..], "x".repeat(300).as_bytes());
        assert!(!s.parts[0].udhi);
        assert_eq!(s.plan.network_parts, 2);
    }

    #[test]
    fn ucs2_parts_hold_67_code_units() {
        let text = "\u{416}".repeat(140);
        let s = segment(&text, &CarrierTextOptions::default(), 9).unwrap();
        assert_eq!(s.parts.len(), 3);
        assert_eq!(s.parts[0].payload.len(), 6 + 134);
        assert_eq!(s.parts[0].data_coding, 8);
        assert_eq!(s.parts[2].payload.len(), 6 + 12);
    }

    #[test]
    fn packed_parts_start_after_one_fill_bit() {
        let options = CarrierTextOptions {
            packed: true,
            ..CarrierTextOptions::default()
        };
        let text = format!("{}{}", "A".repeat(153), "B".repeat(8));
        let s = segment(&text, &options, 0x42).unwrap();
        assert_eq!(s.parts.len(), 2);
        // 153 septets after a 6-octet UDH and 1 fill bit fill exactly 140 octets.
        assert_eq!(s.parts[0].payload.len(), 140);
        let mut expected = vec![0x05, 0x00, 0x03, 0x42, 0x02, 0x02];
        expected.extend(gsm::pack(b"BBBBBBBB", 1));
        assert_eq!(&s.parts[1].payload[..], &expected[..]);
        let back = charset::decode_text(0, true, &s.parts[1].payload, &options);
        assert_eq!(back, "BBBBBBBB");
    }

    #[test]
    fn packed_part_never_ends_with_at_sign_on_an_octet_boundary() {
        let options = CarrierTextOptions {
            packed: true,
            ..CarrierTextOptions::default()
        };
        let text = format!("{}@{}", "a".repeat(152), "b".repeat(20));
        let s = segment(&text, &options, 1).unwrap();
        assert_eq!(s.parts.len(), 2);
        let first = charset::decode_text(0, true, &s.parts[0].payload, &options);
        assert_eq!(first, "a".repeat(152));
        let second = charset::decode_text(0, true, &s.parts[1].payload, &options);
        assert_eq!(second, format!("@{}", "b".repeat(20)));
    }

    #[test]
    fn packed_final_at_sign_on_an_octet_boundary_reads_as_padding() {
        // Without a septet count, eight septets in seven octets look the same as seven septets
        // followed by zero padding; a final '@' (septet 0) there is taken for padding. This is
        // the one ambiguity packing over SMPP cannot avoid.
        let options = CarrierTextOptions {
            packed: true,
            ..CarrierTextOptions::default()
        };
        let s = segment("abcdefg@", &options, 0).unwrap();
        assert_eq!(s.parts[0].payload.len(), 7);
        assert_eq!(
            charset::decode_text(0, false, &s.parts[0].payload, &options),
            "abcdefg"
        );
        let s = segment("abcdef@", &options, 0).unwrap();
        assert_eq!(
            charset::decode_text(0, false, &s.parts[0].payload, &options),
            "abcdef@"
        );
    }

    #[test]
    fn latin1_carrier_gets_latin1_octets() {
        let options = CarrierTextOptions {
            default_alphabet: DefaultAlphabet::Latin1,
            ..CarrierTextOptions::default()
        };
        let s = segment("caf\u{E9}", &options, 0).unwrap();
        assert_eq!(&s.parts[0].payload[..], b"caf\xE9");
        assert_eq!(s.parts[0].data_coding, 0);
    }

    #[test]
    fn binary_data_splits_at_134_octets() {
        let data: Vec<u8> = (0..=255).cycle().take(300).collect();
        let s = segment_binary(&data, &CarrierTextOptions::default(), 5).unwrap();
        assert_eq!(s.parts.len(), 3);
        assert_eq!(s.parts[0].data_coding, 4);
        assert_eq!(s.parts[0].payload.len(), 140);
        let joined: Vec<u8> = s
            .parts
            .iter()
            .flat_map(|p| p.payload[6..].to_vec())
            .collect();
        assert_eq!(joined, data);
        let one = segment_binary(&data[..140], &CarrierTextOptions::default(), 5).unwrap();
        assert_eq!(one.parts.len(), 1);
        assert_eq!(&one.parts[0].payload[..], &data[..140]);
        let empty = segment_binary(&[], &CarrierTextOptions::default(), 5).unwrap();
        assert_eq!(empty.parts.len(), 1);
        assert!(empty.parts[0].payload.is_empty());
    }

    #[test]
    fn too_long_text_names_the_limit() {
        let err = segment(&"z".repeat(2000), &CarrierTextOptions::default(), 0).unwrap_err();
        assert_eq!(err, SmsError::TooManyParts { parts: 14, max: 10 });
        assert_eq!(
            err.to_string(),
            "message needs 14 parts but the limit is 10"
        );
    }
}
