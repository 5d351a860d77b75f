//! Property tests of signature and argument parsing: hostile text never panics or recurses
//! without bound, and every generated signature with matching arguments encodes to calldata
//! that alloy's own decoder reads back as the same values.

use alloy::{
    dyn_abi::{DynSolType, DynSolValue},
    primitives::{Address, B256, I256, U256, hex, keccak256},
};
use proptest::{prelude::*, test_runner::Config};

use super::calldata::{
    CalldataError, FunctionSignature, MAX_TYPE_DEPTH, encode_call, validate_raw_calldata,
};

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Failures are reported in the test output; nothing is written next to the sources.
        failure_persistence: None,
        ..Config::default()
    }
}

/// How a signature spells `types`, comma-separated.
fn spelled(types: &[Ty]) -> String {
    types
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A type as the generator builds it: alloy's type and how a signature spells it.
#[derive(Debug, Clone)]
struct Ty {
    ty: DynSolType,
    text: String,
}

fn elementary() -> impl Strategy<Value = Ty> {
    let bits = (1usize..=32).prop_map(|n| n * 8);
    prop_oneof![
        Just((DynSolType::Address, "address".to_owned())),
        Just((DynSolType::Bool, "bool".to_owned())),
        Just((DynSolType::Bytes, "bytes".to_owned())),
        Just((DynSolType::String, "string".to_owned())),
        bits.clone()
            .prop_map(|n| (DynSolType::Uint(n), format!("uint{n}"))),
        bits.prop_map(|n| (DynSolType::Int(n), format!("int{n}"))),
        (1usize..=32).prop_map(|n| (DynSolType::FixedBytes(n), format!("bytes{n}"))),
    ]
    .prop_map(|(ty, text)| Ty { ty, text })
}

/// Types nested up to [`MAX_TYPE_DEPTH`] arrays and tuples deep.
fn any_type() -> impl Strategy<Value = Ty> {
    elementary().prop_recursive(MAX_TYPE_DEPTH as u32, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| Ty {
                text: format!("{}[]", t.text),
                ty: DynSolType::Array(Box::new(t.ty)),
            }),
            (inner.clone(), 1usize..4).prop_map(|(t, n)| Ty {
                text: format!("{}[{n}]", t.text),
                ty: DynSolType::FixedArray(Box::new(t.ty), n),
            }),
            proptest::collection::vec(inner, 1..4).prop_map(|types| Ty {
                text: format!("({})", spelled(&types)),
                ty: DynSolType::Tuple(types.into_iter().map(|t| t.ty).collect()),
            }),
        ]
    })
}

fn json_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value of `ty` and its text: as a whole argument when `top`, else as a list element
/// (where a number may also be quoted).
pub(super) fn value_of(ty: &DynSolType, top: bool) -> BoxedStrategy<(DynSolValue, String)> {
    match ty.clone() {
        DynSolType::Address => (any::<[u8; 20]>(), 0..3u8)
            .prop_map(|(bytes, style)| {
                let address = Address::from(bytes);
                let text = match style {
                    0 => address.to_checksum(None),
                    1 => format!("0x{}", hex::encode(bytes)),
                    _ => format!("0x{}", hex::encode_upper(bytes)),
                };
                (DynSolValue::Address(address), text)
            })
            .boxed(),
        DynSolType::Bool => any::<bool>()
            .prop_map(|b| (DynSolValue::Bool(b), b.to_string()))
            .boxed(),
        DynSolType::Uint(bits) => (any::<[u8; 32]>(), any::<bool>(), any::<bool>())
            .prop_map(move |(raw, in_hex, quoted)| {
                let value = U256::from_be_bytes(raw) >> (256 - bits);
                let text = if in_hex {
                    format!("{value:#x}")
                } else {
                    value.to_string()
                };
                let text = if quoted && !top {
                    format!("\"{text}\"")
                } else {
                    text
                };
                (DynSolValue::Uint(value, bits), text)
            })
            .boxed(),
        DynSolType::Int(bits) => any::<[u8; 32]>()
            .prop_map(move |raw| {
                let value = I256::from_raw(U256::from_be_bytes(raw)).asr(256 - bits);
                (DynSolValue::Int(value, bits), value.to_string())
            })
            .boxed(),
        DynSolType::FixedBytes(size) => any::<[u8; 32]>()
            .prop_map(move |raw| {
                let mut word = B256::ZERO;
                word[..size].copy_from_slice(&raw[..size]);
                let text = format!("0x{}", hex::encode(&raw[..size]));
                (DynSolValue::FixedBytes(word, size), text)
            })
            .boxed(),
        DynSolType::Bytes => proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|bytes| {
                let text = format!("0x{}", hex::encode(&bytes));
                (DynSolValue::Bytes(bytes), text)
            })
            .boxed(),
        DynSolType::String => any::<String>()
            .prop_map(move |s| {
                let text = if top { s.clone() } else { json_quote(&s) };
                (DynSolValue::String(s), text)
            })
            .boxed(),
        DynSolType::Array(inner) => proptest::collection::vec(value_of(&inner, false), 0..4)
            .prop_map(|items| {
                let (values, texts): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                (
                    DynSolValue::Array(values),
                    format!("[{}]", texts.join(", ")),
                )
            })
            .boxed(),
        DynSolType::FixedArray(inner, n) => proptest::collection::vec(value_of(&inner, false), n)
            .prop_map(|items| {
                let (values, texts): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                (
                    DynSolValue::FixedArray(values),
                    format!("[{}]", texts.join(",")),
                )
            })
            .boxed(),
        DynSolType::Tuple(types) => {
            let components: Vec<_> = types.iter().map(|ty| value_of(ty, false)).collect();
            (components, any::<bool>())
                .prop_map(|(items, parens)| {
                    let (values, texts): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                    let text = texts.join(",");
                    let text = if parens {
                        format!("({text})")
                    } else {
                        format!("[{text}]")
                    };
                    (DynSolValue::Tuple(values), text)
                })
                .boxed()
        }
        other => unreachable!("the generator makes no {other:?}"),
    }
}

/// A signature `f(...)` over generated types, with matching values and argument texts.
fn call() -> impl Strategy<Value = (String, Vec<DynSolType>, Vec<DynSolValue>, Vec<String>)> {
    proptest::collection::vec(any_type(), 0..6).prop_flat_map(|types| {
        let signature = format!("f({})", spelled(&types));
        let values: Vec<_> = types.iter().map(|t| value_of(&t.ty, true)).collect();
        let types: Vec<_> = types.into_iter().map(|t| t.ty).collect();
        (Just(signature), Just(types), values).prop_map(|(signature, types, items)| {
            let (values, texts) = items.into_iter().unzip();
            (signature, types, values, texts)
        })
    })
}

/// Signature-shaped text: tokens of the grammar in any order, so the parser gets past its
/// first character and into its recursion.
fn signature_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("uint256"),
        Just("int8"),
        Just("bytes32"),
        Just("bytes"),
        Just("address"),
        Just("string"),
        Just("bool"),
        Just("uint"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just("[2]"),
        Just("[]"),
        Just(","),
        Just(" "),
        Just("to"),
        Just("0"),
        Just("99999999999"),
        Just("é"),
        Just("\0"),
    ];
    ("[a-zA-Z_$]{0,4}", proptest::collection::vec(token, 0..60))
        .prop_map(|(name, tokens)| format!("{name}({}", tokens.concat()))
}

/// Argument-shaped text: list syntax, quotes, escapes and numbers in any order.
fn argument_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r#"[\[\]\(\),"0-9a-fA-Fx\\u -]{0,60}"#,
        (
            0usize..50_000,
            prop_oneof![Just("["), Just("("), Just("[\""), Just("\\")]
        )
            .prop_map(|(n, open)| open.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn generated_calls_decode_back_to_their_values((signature, types, values, texts) in call()) {
        let parsed = FunctionSignature::parse(&signature).unwrap();
        prop_assert_eq!(parsed.canonical(), signature.as_str());
        prop_assert_eq!(parsed.params(), types.as_slice());
        let calldata = parsed.encode(&texts).unwrap();
        prop_assert_eq!(&calldata[..4], &keccak256(signature.as_bytes())[..4]);
        let decoded = DynSolType::Tuple(types).abi_decode_params(&calldata[4..]).unwrap();
        prop_assert_eq!(decoded, DynSolValue::Tuple(values));
    }

    #[test]
    fn signature_like_text_never_panics(
        signature in prop_oneof![any::<String>(), signature_like()],
        args in proptest::collection::vec(argument_like(), 0..3),
    ) {
        let _ = encode_call(&signature, &args);
        let _ = validate_raw_calldata(&signature);
    }

    #[test]
    fn hostile_arguments_to_a_valid_signature_never_panic(
        ty in any_type(),
        text in argument_like(),
    ) {
        let signature = format!("f({})", ty.text);
        let _ = encode_call(&signature, &[text]);
    }

    #[test]
    fn raw_calldata_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200), upper in any::<bool>()) {
        let digits = if upper { hex::encode_upper(&bytes) } else { hex::encode(&bytes) };
        match validate_raw_calldata(&format!("0x{digits}")) {
            Ok(calldata) => prop_assert_eq!(calldata.as_ref(), bytes.as_slice()),
            Err(CalldataError::RawCalldataTooShort { len }) => {
                prop_assert!((1..4).contains(&len));
                prop_assert_eq!(len, bytes.len());
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Nesting past the cap is refused by name however it is built, and never reaches the
    /// stack's limit: up to 500 levels fit in the signature length cap.
    #[test]
    fn deep_nesting_is_refused_not_recursed(
        levels in proptest::collection::vec(0..3u8, MAX_TYPE_DEPTH + 1..500),
        param in 0usize..3,
    ) {
        let mut ty = "uint256".to_owned();
        let mut open = String::new();
        for level in &levels {
            match level {
                0 => ty.push_str("[]"),
                1 => ty.push_str("[2]"),
                _ => {
                    open.push('(');
                    ty.push(')');
                }
            }
        }
        let nested = format!("{open}{ty}");
        let leading = vec!["bool"; param];
        let signature = format!("f({})", [leading, vec![nested.as_str()]].concat().join(","));
        match FunctionSignature::parse(&signature) {
            Err(CalldataError::TypeTooDeep { param: p, max }) => {
                prop_assert_eq!(p, param);
                prop_assert_eq!(max, MAX_TYPE_DEPTH);
            }
            Err(CalldataError::SignatureTooLong { .. }) => {
                prop_assert!(signature.len() > super::calldata::MAX_SIGNATURE_LENGTH);
            }
            other => prop_assert!(false, "{signature}: {other:?}"),
        }
    }
}

/// The deepest signature that fits in the length cap, all tuples: refused by depth, with
/// the parser's recursion bounded long before the stack.
#[test]
fn the_deepest_signature_that_fits_is_refused_by_depth() {
    let depth = (super::calldata::MAX_SIGNATURE_LENGTH - "f(uint8)".len()) / 2;
    let signature = format!("f({}uint8{})", "(".repeat(depth), ")".repeat(depth));
    assert!(signature.len() <= super::calldata::MAX_SIGNATURE_LENGTH);
    assert!(matches!(
        FunctionSignature::parse(&signature),
        Err(CalldataError::TypeTooDeep { param: 0, .. })
    ));
    // The arguments' parser follows the type, so deeply nested argument text stops at the
    // type's depth too.
    let args = ["[".repeat(200_000)];
    assert!(encode_call("f(uint8[][][][])", &args).is_err());
    let args = ["(".repeat(200_000)];
    assert!(encode_call("f((((uint8))))", &args).is_err());
}
