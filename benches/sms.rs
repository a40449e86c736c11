//! The text layer's hot path: planning and segmenting a message for a carrier, and reading a
//! delivery receipt.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use smppd::sms::{CarrierTextOptions, parse_receipt, plan, segment};

/// A 300-character GSM text with a few extension characters (two parts).
fn gsm_text() -> String {
    "Your order #4711 has shipped {ETA: 2 days} - track it at example.com/t/ABC [ref 42] "
        .chars()
        .cycle()
        .take(300)
        .collect()
}

/// A 100-character UCS2 text with emoji (two parts).
fn ucs2_text() -> String {
    "Привет! Ваш код: 4711 😀 "
        .chars()
        .cycle()
        .take(100)
        .collect()
}

fn plan_and_segment(c: &mut Criterion) {
    let options = CarrierTextOptions::default();
    for (name, text) in [("gsm_300", gsm_text()), ("ucs2_100", ucs2_text())] {
        c.bench_function(&format!("plan/{name}"), |b| {
            b.iter(|| plan(black_box(&text), black_box(&options)))
        });
        c.bench_function(&format!("plan_segment/{name}"), |b| {
            b.iter(|| {
                let planned = plan(black_box(&text), black_box(&options));
                let segments = segment(black_box(&text), black_box(&options), 0x42);
                (planned, segments)
            })
        });
    }
}

fn receipt(c: &mut Criterion) {
    let text = "id:1A2B3C4D sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                stat:DELIVRD err:000 Text:Hello";
    c.bench_function("parse_receipt", |b| {
        b.iter(|| parse_receipt(black_box(text)))
    });
}

criterion_group!(benches, plan_and_segment, receipt);
criterion_main!(benches);
