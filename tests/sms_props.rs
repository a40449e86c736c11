//! Property tests of the text layer: segmentation and reassembly invert each other, parts fit
//! their limits, pairs are never split, the plan predicts the segments, and concatenation
//! references are not reused too soon.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use smppd::sms::{
    Accepted, CarrierTextOptions, DefaultAlphabet, Encoding, Fragment, Part, PayloadField,
    Reassembler, ReassemblyConfig, RefWidth, ReferenceAllocator, ReferenceAllocatorConfig,
    SegmentationMethod, SmsError, charset, gsm, plan, segment, segment_binary,
};

/// Every character of the GSM default alphabet (escape excluded).
fn gsm_base_chars() -> Vec<char> {
    (0u8..128)
        .filter(|&s| s != gsm::ESCAPE)
        .map(|s| gsm::decode(&[s]).chars().next().unwrap())
        .collect()
}

const EXTENSION_CHARS: [char; 10] = [
    '\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '\u{20AC}',
];

/// Characters weighted toward what makes segmentation interesting: GSM, extension pairs,
/// '@' and CR (packing edge cases), emoji and other non-BMP, and anything at all.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        12 => prop::sample::select(gsm_base_chars()),
        4 => prop::sample::select(EXTENSION_CHARS.to_vec()),
        2 => Just('@'),
        1 => Just('\r'),
        2 => prop::char::range('\u{1F300}', '\u{1FAFF}'),
        1 => prop::char::range('\u{10000}', '\u{10FFFF}'),
        1 => prop::char::range('\u{400}', '\u{4FF}'),
        1 => any::<char>(),
    ]
}

/// Texts that are sometimes all-GSM (so the GSM paths are exercised as often as UCS2).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(text_char(), 0..700),
        prop::collection::vec(
            prop_oneof![
                8 => prop::sample::select(gsm_base_chars()),
                3 => prop::sample::select(EXTENSION_CHARS.to_vec()),
                1 => Just('@'),
            ],
            0..1600
        ),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

fn options() -> impl Strategy<Value = CarrierTextOptions> {
    (
        prop::sample::select(vec![
            DefaultAlphabet::Gsm,
            DefaultAlphabet::Latin1,
            DefaultAlphabet::Ascii,
        ]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            SegmentationMethod::Udh8,
            SegmentationMethod::Udh16,
            SegmentationMethod::Sar,
            SegmentationMethod::MessagePayload,
        ]),
        prop::sample::select(vec![10u8, 255]),
    )
        .prop_map(
            |(default_alphabet, allow_latin1, packed, segmentation, max_parts)| {
                CarrierTextOptions {
                    default_alphabet,
                    allow_latin1,
                    packed,
                    segmentation,
                    max_parts,
                }
            },
        )
}

/// A deterministic shuffle with some parts repeated, driven by `seed`. A single short message
/// is not repeated: it carries nothing that could tell a repeat from a new message.
fn delivery_order(n: usize, mut seed: u64) -> Vec<usize> {
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let repeats: Vec<usize> = order
        .iter()
        .copied()
        .filter(|_| n > 1 && next() % 4 == 0)
        .collect();
    for r in repeats {
        let at = (next() % (order.len() as u64 + 1)) as usize;
        order.insert(at, r);
    }
    order
}

fn fragment<'a>(part: &'a Part) -> Fragment<'a> {
    Fragment {
        key: "447700900123>447700900001",
        data_coding: part.data_coding,
        udhi: part.udhi,
        sar: part.sar,
        payload: &part.payload,
    }
}

/// The UDH length at the start of a part (0 without UDHI).
fn header_len(part: &Part) -> usize {
    if part.udhi {
        usize::from(part.payload[0]) + 1
    } else {
        0
    }
}

/// The septets a part's GSM-alphabet text takes on the air, padding included.
fn air_octets_for_septets(header: usize, septets: usize) -> usize {
    let fill = if header > 0 {
        gsm::fill_bits(header)
    } else {
        0
    };
    header + (usize::from(fill) + 7 * septets).div_ceil(8)
}

/// What the receiver should see: GSM writes 'ç' as 0x09, which reads back as 'Ç'.
fn expected_text(text: &str, encoding: Encoding) -> String {
    if encoding == Encoding::Gsm7 {
        text.replace('\u{E7}', "\u{C7}")
    } else {
        text.to_owned()
    }
}

/// Packed septets carry no count over SMPP, so a message whose final part ends with '@' on an
/// octet boundary reads that '@' as padding; that is the only loss allowed.
fn same_text(got: &str, want: &str, packed: bool) -> bool {
    got == want || (packed && want.ends_with('@') && got == &want[..want.len() - 1])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn segment_then_reassemble_gives_back_the_text(
        text in text(),
        options in options(),
        reference in any::<u16>(),
        seed in 1u64..,
    ) {
        let planned = plan(&text, &options);
        let segmented = segment(&text, &options, reference);
        let segments = match (planned, segmented) {
            (Err(p), Err(s)) => {
                prop_assert_eq!(p, s);
                return Ok(());
            }
            (Ok(p), Ok(s)) => {
                prop_assert_eq!(p, s.plan);
                s
            }
            (p, s) => return Err(TestCaseError::fail(format!("plan {p:?} vs segment {s:?}"))),
        };
        let plan = segments.plan;
        prop_assert_eq!(segments.parts.len(), usize::from(plan.parts));

        let want = expected_text(&text, plan.encoding);
        let mut reassembler = Reassembler::new(ReassemblyConfig::default());
        let now = Instant::now();
        let mut complete = None;
        for i in delivery_order(segments.parts.len(), seed) {
            match reassembler.accept(now, &fragment(&segments.parts[i]), &options) {
                Ok(Accepted::Complete(message)) => {
                    prop_assert!(complete.is_none(), "completed twice");
                    complete = Some(message);
                }
                Ok(Accepted::Pending { .. } | Accepted::Duplicate) => {}
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
        }
        let message = complete.ok_or_else(|| TestCaseError::fail("never completed"))?;
        let got = message.text();
        prop_assert!(
            same_text(&got, &want, plan.packed),
            "reassembled {:?}\nwanted      {:?}", got, want
        );
        prop_assert_eq!(reassembler.pending(), 0);
    }

    #[test]
    fn every_part_fits_and_no_pair_is_split(
        text in text(),
        options in options(),
    ) {
        let Ok(segments) = segment(&text, &options, 0xBEEF) else { return Ok(()); };
        let plan = segments.plan;
        let mut joined = String::new();
        for (i, part) in segments.parts.iter().enumerate() {
            prop_assert_eq!(part.data_coding, plan.data_coding);
            prop_assert_eq!(part.udhi, matches!(
                options.segmentation,
                SegmentationMethod::Udh8 | SegmentationMethod::Udh16
            ) && plan.parts > 1);
            prop_assert_eq!(part.sar.is_some(),
                options.segmentation == SegmentationMethod::Sar && plan.parts > 1);
            let header = header_len(part);
            let user_data = &part.payload[header..];
            let piece = charset::decode_text(part.data_coding, part.udhi, &part.payload, &options);

            // A part never ends in the first half of a pair, so the next never starts with
            // the second half.
            match plan.encoding {
                Encoding::Ucs2 => {
                    prop_assert!(user_data.len() % 2 == 0);
                    let units: Vec<u16> = user_data
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    prop_assert!(!units.first().is_some_and(|u| (0xDC00..0xE000).contains(u)));
                    prop_assert!(!units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)));
                }
                Encoding::Gsm7 if !plan.packed => {
                    let trailing_escapes =
                        user_data.iter().rev().take_while(|&&s| s == gsm::ESCAPE).count();
                    prop_assert!(trailing_escapes % 2 == 0, "part ends inside an escape pair");
                }
                _ => {}
            }

            if part.field == PayloadField::ShortMessage {
                let air = match plan.encoding {
                    Encoding::Gsm7 if plan.packed => part.payload.len(),
                    Encoding::Gsm7 => air_octets_for_septets(header, user_data.len()),
                    Encoding::Latin1 | Encoding::Ascii => {
                        air_octets_for_septets(header, gsm::septet_count(&piece).unwrap_or(usize::MAX / 8))
                    }
                    Encoding::Ucs2 | Encoding::Binary => part.payload.len(),
                };
                prop_assert!(air <= 140, "part {} takes {} octets", i, air);
                prop_assert!(part.payload.len() <= 254);
            }

            // Decoded alone, each part gives exactly its share of the text.
            joined.push_str(&piece);
        }
        let want = expected_text(&text, plan.encoding);
        prop_assert!(same_text(&joined, &want, plan.packed), "{:?} vs {:?}", joined, want);
    }

    #[test]
    fn binary_segments_reassemble_to_the_data(
        data in prop::collection::vec(any::<u8>(), 0..2000),
        options in options(),
        seed in 1u64..,
    ) {
        let Ok(segments) = segment_binary(&data, &options, 7) else {
            prop_assert!(data.len() > 133 * usize::from(options.max_parts));
            return Ok(());
        };
        let mut reassembler = Reassembler::new(ReassemblyConfig::default());
        let now = Instant::now();
        let mut complete = None;
        for i in delivery_order(segments.parts.len(), seed) {
            let part = &segments.parts[i];
            if part.field == PayloadField::ShortMessage {
                prop_assert!(part.payload.len() <= 140);
            }
            if let Accepted::Complete(m) = reassembler.accept(now, &fragment(part), &options).unwrap() {
                complete = Some(m);
            }
        }
        prop_assert_eq!(complete.map(|m| m.user_data), Some(data));
    }

    #[test]
    fn decoding_arbitrary_octets_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..300),
        data_coding in any::<u8>(),
        udhi in any::<bool>(),
        options in options(),
    ) {
        let text = charset::decode_text(data_coding, udhi, &data, &options);
        if data.is_empty() {
            prop_assert!(text.is_empty());
        }
        let _ = smppd::sms::parse_udh(&data);
        let _ = gsm::unpack(&data, data_coding % 8);
    }

    #[test]
    fn packing_round_trips_with_a_known_count(
        septets in prop::collection::vec(0u8..128, 0..200),
        fill in 0u8..7,
    ) {
        let packed = gsm::pack(&septets, fill);
        prop_assert_eq!(packed.len(), (usize::from(fill) + 7 * septets.len()).div_ceil(8) * usize::from(!septets.is_empty()));
        prop_assert_eq!(gsm::unpack_exact(&packed, fill, septets.len()), septets.clone());
        // Without the count only a final zero septet exactly filling the last octet is lost.
        let guessed = gsm::unpack(&packed, fill);
        prop_assert!(guessed == septets || (septets.last() == Some(&0) && guessed[..] == septets[..septets.len() - 1]));
    }

    #[test]
    fn a_reference_is_never_reused_for_a_destination_within_the_hold_time(
        steps in prop::collection::vec((0usize..3, 0u64..300), 1..3_000),
        slots in 1usize..4,
        seed in any::<u64>(),
    ) {
        let hold = Duration::from_secs(60);
        let mut refs = ReferenceAllocator::new(ReferenceAllocatorConfig {
            width: RefWidth::Bits8,
            hold,
            slots,
            seed,
        });
        let t0 = Instant::now();
        let mut now = t0;
        let mut last_use: HashMap<(usize, u16), Instant> = HashMap::new();
        for (destination, advance_ms) in steps {
            now += Duration::from_millis(advance_ms);
            match refs.allocate(["447700900001", "447700900002", "447700900003"][destination], now) {
                Ok(r) => {
                    if let Some(&before) = last_use.get(&(destination, r)) {
                        prop_assert!(now.duration_since(before) >= hold,
                            "reference {} reused after {:?}", r, now.duration_since(before));
                    }
                    last_use.insert((destination, r), now);
                }
                Err(SmsError::ReferencesExhausted { available_at }) => {
                    prop_assert!(available_at > now);
                }
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
        }
    }
}
