//! Encoding choice and cost: which alphabet and `data_coding` a text gets on a carrier, how
//! many parts it needs, and how many billable units it has, before anything is sent.
//!
//! The same greedy walk that counts parts here also places the cuts for [`super::segment()`],
//! so the plan and the segments can never disagree.

use super::SmsError;
use super::charset;
use super::gsm;

/// What a carrier means by `data_coding` 0, "SMSC default alphabet" (SMPP 3.4 §5.2.19).
///
/// Usually GSM 03.38, but SMSC-specific: some take it as Latin-1 or ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DefaultAlphabet {
    /// GSM 03.38 7-bit default alphabet.
    #[default]
    Gsm,
    /// ISO-8859-1.
    Latin1,
    /// IA5 / ASCII.
    Ascii,
}

/// How a carrier wants long messages split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SegmentationMethod {
    /// A concatenation UDH with an 8-bit reference (IEI 0x00) in each part, UDHI set.
    #[default]
    Udh8,
    /// A concatenation UDH with a 16-bit reference (IEI 0x08) in each part, UDHI set.
    Udh16,
    /// No UDH; each part carries the `sar_msg_ref_num`, `sar_total_segments` and
    /// `sar_segment_seqnum` TLVs (SMPP 3.4 §5.3.2.22-24) and the SMSC builds the header.
    ///
    /// The per-part budget is that of a 16-bit-reference UDH (152 septets, 66 code units,
    /// 133 octets): the reference is 16 bits wide, so the SMSC may well build the 7-octet
    /// header, and a part sized for the 6-octet one would then not fit.
    Sar,
    /// One PDU carrying the whole text in the `message_payload` TLV (SMPP 3.4 §5.3.2.32);
    /// the SMSC splits it for the air interface.
    MessagePayload,
}

/// A carrier's text options: how to encode and split what is sent to it, and how to read what
/// it sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CarrierTextOptions {
    /// What `data_coding` 0 means on this carrier. Default GSM.
    pub default_alphabet: DefaultAlphabet,
    /// Whether GSM-representable text may go out as Latin-1 (`data_coding` 3) when the
    /// carrier's default alphabet is ASCII and the text is not ASCII. Default false. (When the
    /// default alphabet is Latin-1, Latin-1 is used as `data_coding` 0 regardless; when it is
    /// GSM, GSM covers every text Latin-1 would be allowed for.)
    pub allow_latin1: bool,
    /// Whether GSM 7-bit text is packed (eight septets in seven octets) in `short_message`.
    /// Default false: most SMSCs want one septet per octet and pack for the air themselves.
    pub packed: bool,
    /// How to split long messages. Default [`SegmentationMethod::Udh8`].
    pub segmentation: SegmentationMethod,
    /// The most parts one message may have. Default 10 (1530 GSM or 670 UCS2 characters).
    /// Concatenation numbers parts in one octet, so 255 is the real ceiling.
    pub max_parts: u8,
}

impl Default for CarrierTextOptions {
    fn default() -> Self {
        CarrierTextOptions {
            default_alphabet: DefaultAlphabet::Gsm,
            allow_latin1: false,
            packed: false,
            segmentation: SegmentationMethod::Udh8,
            max_parts: 10,
        }
    }
}

/// The alphabet a message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 7-bit, unpacked or packed per the carrier.
    Gsm7,
    /// ISO-8859-1, one octet per character; the SMSC converts it to GSM for the air, so it
    /// costs GSM septets.
    Latin1,
    /// IA5 / ASCII, one octet per character; like Latin-1 it costs GSM septets on the air.
    Ascii,
    /// UCS2 as UTF-16BE (characters above U+FFFF as surrogate pairs).
    Ucs2,
    /// 8-bit binary data.
    Binary,
}

/// What [`Plan::units`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// GSM septets (an extension character counts two).
    Septet,
    /// UTF-16 code units (a character above U+FFFF counts two).
    CodeUnit,
    /// Octets.
    Octet,
}

impl Encoding {
    /// The `data_coding` value that announces this encoding to the carrier.
    ///
    /// GSM is 0 (the planner only picks it when 0 means GSM); Latin-1 and ASCII use 0 when the
    /// carrier's default alphabet is that charset, otherwise their own values 3 and 1.
    pub fn data_coding(self, options: &CarrierTextOptions) -> u8 {
        match (self, options.default_alphabet) {
            (Encoding::Gsm7, _) => 0x00,
            (Encoding::Latin1, DefaultAlphabet::Latin1) => 0x00,
            (Encoding::Latin1, _) => 0x03,
            (Encoding::Ascii, DefaultAlphabet::Ascii) => 0x00,
            (Encoding::Ascii, _) => 0x01,
            (Encoding::Ucs2, _) => 0x08,
            (Encoding::Binary, _) => 0x04,
        }
    }

    /// The encoding a received `data_coding` announces, or `None` for character sets this
    /// module does not implement (JIS, Cyrillic, Hebrew, pictograms, KS C 5601, reserved).
    ///
    /// Besides the SMPP values, the GSM data coding scheme groups that SMSCs pass through are
    /// honoured (GSM 03.38 §4): 0x10-0x1F (general, uncompressed, with message class),
    /// 0xC0-0xDF (message waiting, GSM 7-bit) and 0xF0-0xFF (message class).
    pub fn from_data_coding(data_coding: u8, options: &CarrierTextOptions) -> Option<Encoding> {
        match data_coding {
            0x00 => Some(match options.default_alphabet {
                DefaultAlphabet::Gsm => Encoding::Gsm7,
                DefaultAlphabet::Latin1 => Encoding::Latin1,
                DefaultAlphabet::Ascii => Encoding::Ascii,
            }),
            0x01 => Some(Encoding::Ascii),
            0x02 | 0x04 => Some(Encoding::Binary),
            0x03 => Some(Encoding::Latin1),
            0x08 => Some(Encoding::Ucs2),
            0x10..=0x1F => match (data_coding >> 2) & 0x03 {
                0 => Some(Encoding::Gsm7),
                1 => Some(Encoding::Binary),
                2 => Some(Encoding::Ucs2),
                _ => None,
            },
            0xC0..=0xDF => Some(Encoding::Gsm7),
            0xF0..=0xFF if data_coding & 0x04 == 0 => Some(Encoding::Gsm7),
            0xF0..=0xFF => Some(Encoding::Binary),
            _ => None,
        }
    }

    /// What the encoding's cost is counted in. Latin-1 and ASCII travel the air as GSM 7-bit,
    /// so they count septets.
    pub const fn unit(self) -> Unit {
        match self {
            Encoding::Gsm7 | Encoding::Latin1 | Encoding::Ascii => Unit::Septet,
            Encoding::Ucs2 => Unit::CodeUnit,
            Encoding::Binary => Unit::Octet,
        }
    }

    /// Units per part: alone, after an 8-bit-reference UDH, after a 16-bit one (a part's TP-UD
    /// is 140 octets; GSM 03.40 §9.2.3.24, reference §7.4).
    pub(crate) const fn budgets(self) -> [usize; 3] {
        match self.unit() {
            Unit::Septet => [160, 153, 152],
            Unit::CodeUnit => [70, 67, 66],
            Unit::Octet => [140, 134, 133],
        }
    }
}

/// What sending a text to a carrier will take: the answer an API can give the producer before
/// anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plan {
    /// The alphabet the text goes out in.
    pub encoding: Encoding,
    /// The `data_coding` value of every part.
    pub data_coding: u8,
    /// Whether GSM septets are packed in the octets.
    pub packed: bool,
    /// How the message is split.
    pub method: SegmentationMethod,
    /// The PDUs that will be sent (1 for `message_payload`).
    pub parts: u8,
    /// The short messages the handset receives, which is what carriers bill: equal to `parts`,
    /// except with `message_payload`, where the SMSC splits (counted with an 8-bit-reference
    /// UDH).
    pub network_parts: u8,
    /// The text's length in [`Plan::unit`]s, without any UDH.
    pub units: usize,
}

impl Plan {
    /// What [`Plan::units`] counts.
    pub const fn unit(&self) -> Unit {
        self.encoding.unit()
    }
}

/// Plans a text for a carrier: GSM 7-bit when every character is in the GSM alphabet (as
/// data_coding 0, or as Latin-1 / ASCII where that is what the carrier's 0 means), else UCS2.
///
/// Fails only with [`SmsError::TooManyParts`] when the text needs more than
/// `options.max_parts` short messages.
pub fn plan(text: &str, options: &CarrierTextOptions) -> Result<Plan, SmsError> {
    layout(text, options, &mut NoCuts)
}

/// Plans 8-bit binary data of `len` octets (`data_coding` 4): 140 octets alone, 134 or 133
/// per part with a UDH.
pub fn plan_binary(len: usize, options: &CarrierTextOptions) -> Result<Plan, SmsError> {
    let [single, ..] = Encoding::Binary.budgets();
    let multi = multi_budget(Encoding::Binary, options.segmentation);
    let network = if len <= single {
        1
    } else {
        len.div_ceil(multi)
    };
    finish(Encoding::Binary, false, len, network, options)
}

/// Receives the byte offsets at which the walk cuts a text into parts.
pub(crate) trait CutSink {
    /// A new part starts at byte `at` of the text.
    fn cut(&mut self, at: usize);
    /// Forget all cuts (the walk is restarted, or the text fits in one part).
    fn clear(&mut self);
}

/// A sink for planning only.
pub(crate) struct NoCuts;

impl CutSink for NoCuts {
    fn cut(&mut self, _: usize) {}
    fn clear(&mut self) {}
}

/// Collects cuts, up to a limit (past it the message is rejected anyway).
pub(crate) struct Cuts {
    pub(crate) at: Vec<usize>,
    limit: usize,
}

impl Cuts {
    pub(crate) fn new(max_parts: u8) -> Self {
        Cuts {
            at: Vec::new(),
            limit: usize::from(max_parts),
        }
    }
}

impl CutSink for Cuts {
    fn cut(&mut self, at: usize) {
        if self.at.len() < self.limit {
            self.at.push(at);
        }
    }
    fn clear(&mut self) {
        self.at.clear();
    }
}

/// The per-part budget when a message is split with this method.
pub(crate) const fn multi_budget(encoding: Encoding, method: SegmentationMethod) -> usize {
    let [_, udh8, udh16] = encoding.budgets();
    match method {
        SegmentationMethod::Udh8 | SegmentationMethod::MessagePayload => udh8,
        SegmentationMethod::Udh16 | SegmentationMethod::Sar => udh16,
    }
}

/// Plans the text and reports the cut positions of a multi-part split to `cuts`.
pub(crate) fn layout<S: CutSink>(
    text: &str,
    options: &CarrierTextOptions,
    cuts: &mut S,
) -> Result<Plan, SmsError> {
    let packed_gsm = options.packed && options.default_alphabet == DefaultAlphabet::Gsm;
    let method = options.segmentation;
    let budget = multi_budget(Encoding::Gsm7, method);
    // Packed parts carry no septet count over SMPP, so a part must not end with '@' exactly on
    // an octet boundary (it would read as padding). Only split parts are affected; the
    // offset is the UDH's bits plus fill, mod 8.
    let at_offset = match (packed_gsm, method) {
        (true, SegmentationMethod::Udh8) => Some(1),
        (true, SegmentationMethod::Udh16 | SegmentationMethod::Sar) => Some(0),
        _ => None,
    };

    let gsm_scan = scan_gsm(text, budget, at_offset, cuts);
    let encoding = match gsm_scan {
        Some(scan) => match options.default_alphabet {
            DefaultAlphabet::Gsm => Some(Encoding::Gsm7),
            DefaultAlphabet::Latin1 if scan.latin1 => Some(Encoding::Latin1),
            DefaultAlphabet::Ascii if scan.ascii => Some(Encoding::Ascii),
            DefaultAlphabet::Ascii if options.allow_latin1 && scan.latin1 => Some(Encoding::Latin1),
            _ => None,
        },
        None => None,
    };
    let (encoding, walked) = match (encoding, gsm_scan) {
        (Some(encoding), Some(scan)) => (encoding, scan.walk),
        _ => {
            cuts.clear();
            let budget = multi_budget(Encoding::Ucs2, method);
            (Encoding::Ucs2, scan_ucs2(text, budget, cuts))
        }
    };

    let [single, ..] = encoding.budgets();
    let network = if walked.units <= single {
        cuts.clear();
        1
    } else {
        walked.parts
    };
    if method == SegmentationMethod::MessagePayload {
        cuts.clear();
    }
    finish(
        encoding,
        encoding == Encoding::Gsm7 && options.packed,
        walked.units,
        network,
        options,
    )
}

/// Builds the plan from the counted parts, enforcing the part limit.
fn finish(
    encoding: Encoding,
    packed: bool,
    units: usize,
    network: usize,
    options: &CarrierTextOptions,
) -> Result<Plan, SmsError> {
    let max = options.max_parts;
    let network_parts = match u8::try_from(network) {
        Ok(n) if n <= max => n,
        _ => {
            return Err(SmsError::TooManyParts {
                parts: network,
                max,
            });
        }
    };
    let parts = if options.segmentation == SegmentationMethod::MessagePayload {
        1
    } else {
        network_parts
    };
    Ok(Plan {
        encoding,
        data_coding: encoding.data_coding(options),
        packed,
        method: options.segmentation,
        parts,
        network_parts,
        units,
    })
}

/// The result of a greedy split.
#[derive(Debug, Clone, Copy)]
struct Walk {
    units: usize,
    parts: usize,
}

/// A greedy splitter: characters are added to the current part while they fit; a character
/// that does not fit starts the next part, so an escape pair or surrogate pair (one character,
/// two units) is never split.
struct Splitter<'a, S> {
    budget: usize,
    at_offset: Option<usize>,
    current: usize,
    units: usize,
    parts: usize,
    last_start: usize,
    last_is_at: bool,
    cuts: &'a mut S,
}

impl<'a, S: CutSink> Splitter<'a, S> {
    fn new(budget: usize, at_offset: Option<usize>, cuts: &'a mut S) -> Self {
        Splitter {
            budget,
            at_offset,
            current: 0,
            units: 0,
            parts: 1,
            last_start: 0,
            last_is_at: false,
            cuts,
        }
    }

    #[inline(always)]
    fn push(&mut self, at: usize, is_at_sign: bool, cost: usize) {
        self.units += cost;
        if self.current + cost > self.budget {
            self.parts += 1;
            let ends_on_boundary = self
                .at_offset
                .is_some_and(|offset| (offset + 7 * self.current) % 8 == 0);
            if self.last_is_at && ends_on_boundary {
                // Move the '@' (one septet) to the next part; the part now ends 7 bits before
                // the boundary, where a decoder sees (and drops) the zero padding instead.
                self.cuts.cut(self.last_start);
                self.current = 1 + cost;
            } else {
                self.cuts.cut(at);
                self.current = cost;
            }
        } else {
            self.current += cost;
        }
        self.last_start = at;
        self.last_is_at = is_at_sign;
    }

    fn walk(&self) -> Walk {
        Walk {
            units: self.units,
            parts: self.parts,
        }
    }
}

/// The GSM walk, noting on the way whether the text would also fit Latin-1 or ASCII.
#[derive(Debug, Clone, Copy)]
struct GsmScan {
    walk: Walk,
    latin1: bool,
    ascii: bool,
}

/// Walks the text in GSM septets; `None` if a character is not in the GSM alphabet.
fn scan_gsm<S: CutSink>(
    text: &str,
    budget: usize,
    at_offset: Option<usize>,
    cuts: &mut S,
) -> Option<GsmScan> {
    let mut splitter = Splitter::new(budget, at_offset, cuts);
    let mut latin1 = true;
    let mut ascii = true;
    let mut chars = gsm::Chars::new(text);
    loop {
        let at = chars.offset();
        let Some((b, c)) = chars.next() else { break };
        let cost = if b < 0x80 {
            // The common case: a table load, no flags to update.
            match gsm::ascii_septets(b) {
                0 => return None,
                n => n,
            }
        } else {
            ascii = false;
            latin1 &= charset::is_latin1(c);
            gsm::lookup(c)?.septets()
        };
        splitter.push(at, b == b'@', cost);
    }
    Some(GsmScan {
        walk: splitter.walk(),
        latin1,
        ascii,
    })
}

/// Walks the text in UTF-16 code units.
fn scan_ucs2<S: CutSink>(text: &str, budget: usize, cuts: &mut S) -> Walk {
    let mut splitter = Splitter::new(budget, None, cuts);
    for (at, c) in text.char_indices() {
        splitter.push(at, false, c.len_utf16());
    }
    splitter.walk()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CarrierTextOptions {
        CarrierTextOptions::default()
    }

    #[test]
    fn gsm_text_plans_as_gsm_on_data_coding_zero() {
        let p = plan("Hello {world}", &options()).unwrap();
        assert_eq!(p.encoding, Encoding::Gsm7);
        assert_eq!(p.data_coding, 0);
        assert_eq!(p.units, 15);
        assert_eq!(p.unit(), Unit::Septet);
        assert_eq!(p.parts, 1);
    }

    #[test]
    fn one_non_gsm_character_makes_the_text_ucs2() {
        let p = plan("Hello \u{1F600}", &options()).unwrap();
        assert_eq!(p.encoding, Encoding::Ucs2);
        assert_eq!(p.data_coding, 8);
        assert_eq!(p.units, 8);
        assert_eq!(p.unit(), Unit::CodeUnit);
    }

    #[test]
    fn gsm_limits_are_160_then_153_per_part() {
        let o = options();
        assert_eq!(plan(&"a".repeat(160), &o).unwrap().parts, 1);
        assert_eq!(plan(&"a".repeat(161), &o).unwrap().parts, 2);
        assert_eq!(plan(&"a".repeat(306), &o).unwrap().parts, 2);
        assert_eq!(plan(&"a".repeat(307), &o).unwrap().parts, 3);
        assert_eq!(plan(&"a".repeat(1530), &o).unwrap().parts, 10);
        assert_eq!(
            plan(&"a".repeat(1531), &o),
            Err(SmsError::TooManyParts { parts: 11, max: 10 })
        );
    }

    #[test]
    fn gsm_limits_with_16_bit_reference_are_152_per_part() {
        let o = CarrierTextOptions {
            segmentation: SegmentationMethod::Udh16,
            ..options()
        };
        assert_eq!(plan(&"a".repeat(304), &o).unwrap().parts, 2);
        assert_eq!(plan(&"a".repeat(305), &o).unwrap().parts, 3);
    }

    #[test]
    fn ucs2_limits_are_70_then_67_per_part() {
        let o = options();
        let s = |n| "\u{416}".repeat(n);
        assert_eq!(plan(&s(70), &o).unwrap().parts, 1);
        assert_eq!(plan(&s(71), &o).unwrap().parts, 2);
        assert_eq!(plan(&s(134), &o).unwrap().parts, 2);
        assert_eq!(plan(&s(135), &o).unwrap().parts, 3);
        assert_eq!(plan(&s(670), &o).unwrap().parts, 10);
        assert!(plan(&s(671), &o).is_err());
    }

    #[test]
    fn an_escape_pair_that_does_not_fit_moves_to_the_next_part() {
        // 152 'a' then '{': 154 septets, so two parts; the pair cannot straddle 153.
        let text = format!("{}{{{}", "a".repeat(152), "a".repeat(10));
        let mut cuts = Cuts::new(10);
        let p = layout(&text, &options(), &mut cuts).unwrap();
        assert_eq!(p.parts, 2);
        assert_eq!(cuts.at, vec![152]);
    }

    #[test]
    fn a_surrogate_pair_that_does_not_fit_moves_to_the_next_part() {
        let text = format!("{}\u{1F600}x", "\u{416}".repeat(66));
        let mut cuts = Cuts::new(10);
        let p = layout(&text, &options(), &mut cuts).unwrap();
        assert_eq!(p.units, 69);
        assert_eq!(p.parts, 1);
        let text = format!("{}\u{1F600}{}", "\u{416}".repeat(66), "x".repeat(10));
        let p = layout(&text, &options(), &mut cuts).unwrap();
        assert_eq!(p.parts, 2);
        assert_eq!(cuts.at, vec![66 * 2]);
    }

    #[test]
    fn latin1_default_alphabet_sends_latin1_text_as_data_coding_zero() {
        let o = CarrierTextOptions {
            default_alphabet: DefaultAlphabet::Latin1,
            ..options()
        };
        let p = plan("caf\u{E9} {ok}", &o).unwrap();
        assert_eq!(p.encoding, Encoding::Latin1);
        assert_eq!(p.data_coding, 0);
        assert_eq!(p.units, 11, "the braces still cost two septets on the air");
        // Greek capital delta is GSM but not Latin-1.
        assert_eq!(plan("\u{394}", &o).unwrap().encoding, Encoding::Ucs2);
    }

    #[test]
    fn ascii_default_alphabet_uses_latin1_only_when_allowed() {
        let ascii = CarrierTextOptions {
            default_alphabet: DefaultAlphabet::Ascii,
            ..options()
        };
        let p = plan("plain", &ascii).unwrap();
        assert_eq!((p.encoding, p.data_coding), (Encoding::Ascii, 0));
        assert_eq!(plan("caf\u{E9}", &ascii).unwrap().encoding, Encoding::Ucs2);
        let latin = CarrierTextOptions {
            allow_latin1: true,
            ..ascii
        };
        let p = plan("caf\u{E9}", &latin).unwrap();
        assert_eq!((p.encoding, p.data_coding), (Encoding::Latin1, 3));
        // Latin-1 but not GSM (e-diaeresis): UCS2 even when Latin-1 is allowed.
        assert_eq!(plan("\u{EB}", &latin).unwrap().encoding, Encoding::Ucs2);
        // Backtick is ASCII but not GSM.
        assert_eq!(plan("`", &latin).unwrap().encoding, Encoding::Ucs2);
    }

    #[test]
    fn message_payload_is_one_pdu_but_bills_network_parts() {
        let o = CarrierTextOptions {
            segmentation: SegmentationMethod::MessagePayload,
            ..options()
        };
        let p = plan(&"x".repeat(300), &o).unwrap();
        assert_eq!((p.parts, p.network_parts, p.units), (1, 2, 300));
        assert!(plan(&"x".repeat(1531), &o).is_err());
    }

    #[test]
    fn binary_limits_are_140_then_134_per_part() {
        let o = options();
        assert_eq!(plan_binary(140, &o).unwrap().parts, 1);
        assert_eq!(plan_binary(141, &o).unwrap().parts, 2);
        assert_eq!(plan_binary(268, &o).unwrap().parts, 2);
        assert_eq!(plan_binary(269, &o).unwrap().parts, 3);
        let p = plan_binary(0, &o).unwrap();
        assert_eq!(
            (p.encoding, p.data_coding, p.parts),
            (Encoding::Binary, 4, 1)
        );
    }

    #[test]
    fn empty_text_is_one_empty_gsm_part() {
        let p = plan("", &options()).unwrap();
        assert_eq!((p.encoding, p.parts, p.units), (Encoding::Gsm7, 1, 0));
    }

    #[test]
    fn max_parts_of_zero_rejects_everything() {
        let o = CarrierTextOptions {
            max_parts: 0,
            ..options()
        };
        assert_eq!(
            plan("hi", &o),
            Err(SmsError::TooManyParts { parts: 1, max: 0 })
        );
    }

    #[test]
    fn data_coding_groups_decode_to_their_alphabet() {
        let o = options();
        let from = |dc| Encoding::from_data_coding(dc, &o);
        assert_eq!(from(0x00), Some(Encoding::Gsm7));
        assert_eq!(from(0x01), Some(Encoding::Ascii));
        assert_eq!(from(0x03), Some(Encoding::Latin1));
        assert_eq!(from(0x04), Some(Encoding::Binary));
        assert_eq!(from(0x08), Some(Encoding::Ucs2));
        assert_eq!(from(0x10), Some(Encoding::Gsm7));
        assert_eq!(from(0x18), Some(Encoding::Ucs2));
        assert_eq!(from(0xF0), Some(Encoding::Gsm7));
        assert_eq!(from(0xF5), Some(Encoding::Binary));
        assert_eq!(from(0x06), None);
    }
}
