use super::*;

/// Feed `input` in the given pieces and collect every event (including the one `finish` yields).
fn decode_pieces(pieces: &[&[u8]], max: usize) -> Result<Vec<Event>, SseError> {
    let mut decoder = Decoder::new(max);
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        while let Some(event) = decoder.next_event()? {
            events.push(event);
        }
    }
    if let Some(event) = decoder.finish()? {
        events.push(event);
    }
    Ok(events)
}

fn decode(input: &[u8]) -> Vec<Event> {
    decode_pieces(&[input], DEFAULT_MAX_EVENT_BYTES).unwrap()
}

fn ev(data: &str) -> Event {
    Event::data(data)
}

const MIXED: &str = "\u{FEFF}: keep-alive comment\r\n\
event: message\r\n\
id: 7\r\n\
retry: 1500\r\n\
data: {\"content\":\"你好，世界 🌏🚀\"}\r\n\
\r\n\
data: 第一行\r\n\
data: second 😀 line\r\n\
\r\n\
data: [DONE]\r\n\
\r\n";

fn mixed_expected() -> Vec<Event> {
    vec![
        Event {
            event: Some("message".into()),
            data: "{\"content\":\"你好，世界 🌏🚀\"}".into(),
            id: Some("7".into()),
            retry: Some(1500),
        },
        ev("第一行\nsecond 😀 line"),
        ev("[DONE]"),
    ]
}

#[test]
fn cjk_emoji_crlf_stream_is_identical_at_every_split() {
    let bytes = MIXED.as_bytes();
    let whole = decode(bytes);
    assert_eq!(whole, mixed_expected());
    for at in 0..=bytes.len() {
        let events = decode_pieces(&[&bytes[..at], &bytes[at..]], DEFAULT_MAX_EVENT_BYTES)
            .unwrap_or_else(|e| panic!("split at {at}: {e}"));
        assert_eq!(events, whole, "split at byte {at}");
    }
}

#[test]
fn byte_at_a_time_and_three_way_splits_agree() {
    let bytes = MIXED.as_bytes();
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        decode_pieces(&singles, DEFAULT_MAX_EVENT_BYTES).unwrap(),
        mixed_expected()
    );
    for a in (0..bytes.len()).step_by(7) {
        for b in (a..bytes.len()).step_by(5) {
            let pieces = [&bytes[..a], &bytes[a..b], &bytes[b..]];
            assert_eq!(
                decode_pieces(&pieces, DEFAULT_MAX_EVENT_BYTES).unwrap(),
                mixed_expected(),
                "splits at {a} and {b}"
            );
        }
    }
}

#[test]
fn line_end_styles_are_equivalent() {
    for input in [
        "data: a\n\ndata: b\ndata: c\n\n",
        "data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n",
        "data: a\r\rdata: b\rdata: c\r\r",
        "data: a\r\n\ndata: b\rdata: c\n\r\n",
    ] {
        assert_eq!(
            decode(input.as_bytes()),
            vec![ev("a"), ev("b\nc")],
            "{input:?}"
        );
    }
}

#[test]
fn field_parsing_follows_the_spec() {
    let cases: &[(&str, Vec<Event>)] = &[
        ("data:no-space\n\n", vec![ev("no-space")]),
        ("data:  two spaces\n\n", vec![ev(" two spaces")]),
        ("data\n\n", vec![ev("")]),
        ("data:\ndata:\n\n", vec![ev("\n")]),
        (": only a comment\n\n", vec![]),
        ("event: ping\n\n", vec![]),
        ("unknown: x\ndata: y\n\n", vec![ev("y")]),
        (
            "retry: 12x\ndata: y\n\n",
            vec![Event {
                retry: None,
                ..ev("y")
            }],
        ),
        ("data: {\"a\":1}", vec![ev("{\"a\":1}")]),
        ("data: last\n", vec![ev("last")]),
        ("\u{FEFF}data: bom\n\n", vec![ev("bom")]),
    ];
    for (input, expected) in cases {
        assert_eq!(&decode(input.as_bytes()), expected, "{input:?}");
    }
}

#[test]
fn oversized_event_is_a_typed_error() {
    let line = format!("data: {}\n\n", "x".repeat(200));
    assert_eq!(
        decode_pieces(&[line.as_bytes()], 64),
        Err(SseError::EventTooLarge { limit: 64 })
    );
    // Many short data lines add up to one big event.
    let many = "data: 0123456789\n".repeat(20) + "\n";
    assert_eq!(
        decode_pieces(&[many.as_bytes()], 64),
        Err(SseError::EventTooLarge { limit: 64 })
    );
    // A line that never ends is caught while it grows, chunk by chunk.
    let mut decoder = Decoder::new(64);
    let mut result = Ok(None);
    for _ in 0..10 {
        decoder.feed(b"data: 0123456789");
        result = decoder.next_event();
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(SseError::EventTooLarge { limit: 64 }));
    // The error is final.
    decoder.feed(b"\n\ndata: ok\n\n");
    assert!(decoder.next_event().is_err());
}

#[test]
fn events_below_the_cap_pass() {
    let line = format!("data: {}\n\n", "x".repeat(60));
    assert_eq!(decode_pieces(&[line.as_bytes()], 64).unwrap().len(), 1);
}

#[test]
fn invalid_utf8_is_a_typed_error() {
    assert_eq!(
        decode_pieces(&[b"data: \xff\xfe\n\n"], DEFAULT_MAX_EVENT_BYTES),
        Err(SseError::InvalidUtf8)
    );
}

#[test]
fn encoder_output_decodes_to_the_same_events() {
    let events = vec![
        mixed_expected()[0].clone(),
        ev("multi\nline\r\nwith\rall ends"),
        ev(""),
        Event {
            event: Some("error".into()),
            ..ev("{\"error\":{\"message\":\"boom\"}}")
        },
        ev("[DONE]"),
    ];
    let mut wire = Vec::new();
    for event in &events {
        encode(event, &mut wire);
    }
    let mut expected = events.clone();
    expected[1].data = "multi\nline\nwith\nall ends".into();
    assert_eq!(decode(&wire), expected);

    let mut fast = Vec::new();
    encode_data_line(br#"{"a":1}"#, &mut fast);
    fast.extend_from_slice(DONE);
    assert_eq!(decode(&fast), vec![ev(r#"{"a":1}"#), ev("[DONE]")]);
    assert!(decode(&fast)[1].is_done());
}

#[test]
fn long_streams_do_not_grow_the_buffer() {
    let mut decoder = Decoder::default();
    let chunk = b"data: {\"delta\":\"some text\"}\n\n";
    for _ in 0..10_000 {
        decoder.feed(chunk);
        while decoder.next_event().unwrap().is_some() {}
    }
    assert!(
        decoder.buf.capacity() < 64 * 1024,
        "{}",
        decoder.buf.capacity()
    );
}

#[test]
fn positions_cut_the_input_into_each_events_own_bytes() {
    let input: &[u8] = b": hi\nevent: message_start\ndata: {\"a\":1}\n\nevent: ping\r\ndata: {}\r\n\r\ndata: \xe4\xbd\xa0\n\n";
    let expected: [&[u8]; 3] = [
        b": hi\nevent: message_start\ndata: {\"a\":1}\n\n",
        b"event: ping\r\ndata: {}\r\n\r\n",
        b"data: \xe4\xbd\xa0\n\n",
    ];
    for split in 0..=input.len() {
        let mut decoder = Decoder::default();
        let mut cut = 0usize;
        let mut slices = Vec::new();
        for piece in [&input[..split], &input[split..]] {
            decoder.feed(piece);
            while let Some(_event) = decoder.next_event().unwrap() {
                let end = usize::try_from(decoder.position()).unwrap();
                slices.push(input[cut..end].to_vec());
                cut = end;
            }
        }
        // A CRLF split between two reads may leave its LF to the next event's bytes; nothing
        // is lost or repeated either way.
        assert_eq!(slices.len(), 3, "split at {split}");
        assert_eq!(slices.concat(), input, "split at {split}");
        if split != 65 {
            let expected: Vec<Vec<u8>> = expected.iter().map(|s| s.to_vec()).collect();
            assert_eq!(slices, expected);
        }
    }
}
