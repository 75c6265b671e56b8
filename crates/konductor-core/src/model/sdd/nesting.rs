//! How deeply a YAML text nests, measured before `serde_yaml` reads it.
//!
//! `serde_yaml` refuses nesting deeper than 128 levels, but only after libyaml's scanner has
//! read the whole file, and that scanner is quadratic in the nesting depth of flow
//! collections (`[[[[…`): every token walks the stack of possible simple keys, one per
//! level. A 200 KB file of nested brackets took 51 s to refuse. This walk pulls parse events
//! from the same libyaml one at a time and stops at the first collection deeper than the
//! limit, so the scanner never holds more than about `limit` levels plus its bounded
//! look-ahead (a simple key is resolved within 1024 characters): the cost is linear in
//! the size of the file.
//!
//! It is the one place in the crate that calls libyaml directly, hence `unsafe`: libyaml's
//! C-style API is all that the Rust port offers.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use unsafe_libyaml as unsafe_sys;

/// The 1-based line of the first list or map nested deeper than `limit` levels, if any.
/// A syntax error ends the walk without a verdict: `serde_yaml` reports it afterwards.
pub(super) fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let len = u64::try_from(text.len()).ok()?;
    // The parser keeps a pointer to itself (its read handler's data), so it lives on the
    // heap and never moves.
    let mut parser: Box<MaybeUninit<unsafe_sys::yaml_parser_t>> = Box::new(MaybeUninit::uninit());
    let p = parser.as_mut_ptr();
    // SAFETY: `p` points to writable memory for a parser; `initialize` fills it in. The input
    // outlives the parser, which is deleted below before `text` goes out of scope.
    unsafe {
        if unsafe_sys::yaml_parser_initialize(p).fail {
            return None;
        }
        unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
        unsafe_sys::yaml_parser_set_input_string(p, text.as_ptr(), len);
    }
    let mut depth = 0usize;
    let mut found = None;
    loop {
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        let ev = event.as_mut_ptr();
        // SAFETY: the parser was initialized above; `parse` fills in `ev` when it succeeds,
        // and the event is deleted once its type and position are read.
        let (kind, line) = unsafe {
            if unsafe_sys::yaml_parser_parse(p, ev).fail {
                break;
            }
            let kind = (*ev).type_;
            let line = (*ev).start_mark.line;
            unsafe_sys::yaml_event_delete(ev);
            (kind, line)
        };
        match kind {
            unsafe_sys::YAML_SEQUENCE_START_EVENT | unsafe_sys::YAML_MAPPING_START_EVENT => {
                depth += 1;
                if depth > limit {
                    found = Some(
                        usize::try_from(line)
                            .unwrap_or(usize::MAX)
                            .saturating_add(1),
                    );
                    break;
                }
            }
            unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                depth = depth.saturating_sub(1)
            }
            unsafe_sys::YAML_STREAM_END_EVENT => break,
            _ => {}
        }
    }
    // SAFETY: initialized above, deleted once.
    unsafe { unsafe_sys::yaml_parser_delete(p) };
    found
}
