//! Interaction encoding: a function signature with its arguments as text, or raw calldata,
//! turned into the exact calldata of one call.
//!
//! The text comes from a game backend over the API, so everything is checked before it can
//! reach a signature: a typo must come back as an error that names the argument and says what
//! was expected, never as calldata that does something else on-chain. Parsing is strict where
//! leniency would guess (no ether units, no decimals, no `0x`-less hex, checksums enforced)
//! and bounded everywhere, so hostile input costs little and never panics.
//!
//! # Signatures
//!
//! `name(type,...)`, e.g. `mint(address,uint256,uint256)`. The name is a Solidity identifier.
//! Types are `address`, `bool`, `string`, `bytes`, `bytes1`..`bytes32`, `uint8`..`uint256` and
//! `int8`..`int256` in steps of 8 (`uint` and `int` mean the 256-bit ones), fixed arrays
//! `T[k]`, dynamic arrays `T[]` and tuples `(T1,T2)`. Whitespace between tokens is tolerated.
//! Parameter names (`address to`) are refused: a signature is the canonical list of types
//! that the selector is hashed from, and accepting names would invite data locations and
//! other Solidity syntax that silently means nothing here.
//!
//! # Arguments
//!
//! One string per parameter:
//! - `address`: `0x` and 40 hex digits; a mixed-case address must carry a valid EIP-55
//!   checksum, an all-lower or all-upper case one has none to check;
//! - `uintN`: a decimal integer or `0x` hex; `intN`: a decimal integer, `-` for negatives;
//!   both are range-checked for N bits;
//! - `bool`: `true` or `false`;
//! - `bytes`: `0x` and an even number of hex digits; `bytesN`: `0x` and exactly 2N hex digits;
//! - `string`: taken verbatim, quotes and all;
//! - arrays: JSON-style lists, `[1,2,3]` or `["0xab..","0xcd.."]`; inside a list, strings are
//!   JSON strings in double quotes, other values may be quoted or bare; a fixed array needs
//!   exactly its length of elements;
//! - tuples: a list of their components, `[1,"0xab.."]` or `(1,0xab..)`.
//!
//! Whitespace around any argument other than a top-level `string` is ignored.
//!
//! Indices in errors are 0-based: parameter 0 is the first type of the signature and
//! argument 0 the first element of the argument slice. Inside an argument, a path such as
//! `[2][0]` names the element (or tuple component) that failed.

use std::{borrow::Cow, fmt, str::FromStr};

use alloy::{
    dyn_abi::{DynSolType, DynSolValue},
    primitives::{Address, B256, Bytes, I256, Selector, U256, hex, keccak256},
};

/// Longest function signature accepted, in bytes. Real signatures are far shorter; the cap
/// bounds the parser's work on hostile input.
pub const MAX_SIGNATURE_LENGTH: usize = 1024;

/// Most entries in one parameter list: the function's own, and each tuple's components.
/// Solidity itself cannot compile much more than this (stack too deep).
pub const MAX_PARAMS: usize = 32;

/// Deepest nesting of arrays and tuples in one parameter type: `uint256[][]` is 2 deep,
/// `(uint256[],bool)[]` is 3. Bounds recursion on hostile signatures and arguments.
pub const MAX_TYPE_DEPTH: usize = 4;

/// Most array elements in one argument, counted over every nesting level. Also the largest
/// fixed array length a signature may declare.
pub const MAX_ARRAY_ELEMENTS: usize = 1024;

/// Largest calldata produced or accepted, in bytes. A user operation carrying more would be
/// expensive and is almost certainly a mistake; bundlers cap operation size too.
pub const MAX_CALLDATA_SIZE: usize = 64 * 1024;

/// Longest text accepted for one argument, in bytes: room for a hex `bytes` value that fills
/// [`MAX_CALLDATA_SIZE`], with slack for list syntax. Anything longer cannot fit, so it is
/// refused before it is parsed.
pub const MAX_ARGUMENT_LENGTH: usize = 4 * MAX_CALLDATA_SIZE;

/// How many characters of an offending input an error message repeats: enough for a whole
/// bytes32 (66) or uint256 (78 digits), short enough that hostile input cannot flood a log.
const EXCERPT_CHARS: usize = 80;

/// Why a signature, its arguments or raw calldata cannot become calldata. Each variant names
/// what was wrong and what is expected; offending inputs are shortened to 80 characters.
/// Indices are 0-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalldataError {
    /// The signature is longer than [`MAX_SIGNATURE_LENGTH`].
    #[error("function signature is {len} bytes long: expected at most {max}")]
    SignatureTooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_SIGNATURE_LENGTH`].
        max: usize,
    },
    /// The function name is not a Solidity identifier.
    #[error(
        "function name {name:?} is not a Solidity identifier: expected a letter, `_` or `$` \
         followed by letters, digits, `_` or `$`"
    )]
    InvalidFunctionName {
        /// The name as given.
        name: String,
    },
    /// The signature does not have the shape `name(type,...)`.
    #[error(
        "function signature {signature:?} is malformed at offset {position}: expected {expected}"
    )]
    MalformedSignature {
        /// The signature as given.
        signature: String,
        /// Byte offset of the problem, 0-based.
        position: usize,
        /// What should have been there.
        expected: &'static str,
    },
    /// A parameter type is not a Solidity ABI type.
    #[error(
        "parameter {param} has unknown type {ty:?}: expected address, bool, string, bytes, \
         bytes1 to bytes32, uint8 to uint256 or int8 to int256 in steps of 8, or an array or \
         tuple of these"
    )]
    UnknownType {
        /// The parameter (top-level, 0-based) whose type contains it.
        param: usize,
        /// The type as written.
        ty: String,
    },
    /// A fixed array length is not a number from 1 to [`MAX_ARRAY_ELEMENTS`].
    #[error(
        "parameter {param} has fixed array length {length:?}: expected a decimal number from 1 \
         to {max}"
    )]
    InvalidArrayLength {
        /// The parameter (top-level, 0-based).
        param: usize,
        /// The length as written.
        length: String,
        /// [`MAX_ARRAY_ELEMENTS`].
        max: usize,
    },
    /// A parameter carries a name, which signatures here do not take.
    #[error(
        "parameter {param} is followed by {name:?}: parameter names are not accepted, write \
         types only, e.g. `transfer(address,uint256)`"
    )]
    ParameterName {
        /// The parameter (top-level, 0-based).
        param: usize,
        /// The word after the type.
        name: String,
    },
    /// A parameter list or tuple has more than [`MAX_PARAMS`] entries.
    #[error("a parameter list or tuple has more than {max} entries")]
    TooManyParameters {
        /// [`MAX_PARAMS`].
        max: usize,
    },
    /// A type nests arrays and tuples deeper than [`MAX_TYPE_DEPTH`].
    #[error("parameter {param} nests arrays and tuples more than {max} levels deep")]
    TypeTooDeep {
        /// The parameter (top-level, 0-based).
        param: usize,
        /// [`MAX_TYPE_DEPTH`].
        max: usize,
    },
    /// The number of arguments does not match the signature.
    #[error("{signature} takes {expected} argument(s), got {got}")]
    ArgumentCount {
        /// The canonical signature.
        signature: String,
        /// How many parameters it has.
        expected: usize,
        /// How many arguments were given.
        got: usize,
    },
    /// An argument's text is longer than [`MAX_ARGUMENT_LENGTH`].
    #[error("argument {index} is {len} bytes long: expected at most {max}")]
    ArgumentTooLong {
        /// The argument, 0-based.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_ARGUMENT_LENGTH`].
        max: usize,
    },
    /// An argument (or an element of it) is not written as its type requires.
    #[error("argument {index}{} ({value:?}) is not a {ty}: expected {expected}", at(.path))]
    InvalidArgument {
        /// The argument, 0-based.
        index: usize,
        /// The element inside the argument, e.g. `[2][0]`; empty for the argument itself.
        path: String,
        /// The offending text.
        value: String,
        /// The type it should have, in canonical form.
        ty: String,
        /// What is expected instead.
        expected: String,
    },
    /// A number does not fit its type.
    #[error("argument {index}{} ({value:?}) is out of range for {ty}: expected {range}", at(.path))]
    OutOfRange {
        /// The argument, 0-based.
        index: usize,
        /// The element inside the argument; empty for the argument itself.
        path: String,
        /// The offending text.
        value: String,
        /// The integer type.
        ty: String,
        /// The type's range.
        range: String,
    },
    /// A mixed-case address whose EIP-55 checksum is wrong: most likely a mistyped address.
    #[error(
        "argument {index}{} ({value:?}) fails its EIP-55 checksum: expected the exact \
         checksummed form; a wrong checksum usually means a mistyped address",
        at(.path)
    )]
    BadChecksum {
        /// The argument, 0-based.
        index: usize,
        /// The element inside the argument; empty for the argument itself.
        path: String,
        /// The address as given.
        value: String,
    },
    /// A fixed array has the wrong number of elements.
    #[error("argument {index}{} has {got} element(s): {ty} takes exactly {expected}", at(.path))]
    ArrayLength {
        /// The argument, 0-based.
        index: usize,
        /// The array inside the argument; empty for the argument itself.
        path: String,
        /// The array type.
        ty: String,
        /// Its declared length.
        expected: usize,
        /// How many elements were given.
        got: usize,
    },
    /// An argument has more than [`MAX_ARRAY_ELEMENTS`] array elements.
    #[error("argument {index} has more than {max} array elements")]
    TooManyElements {
        /// The argument, 0-based.
        index: usize,
        /// [`MAX_ARRAY_ELEMENTS`].
        max: usize,
    },
    /// The calldata would exceed [`MAX_CALLDATA_SIZE`].
    #[error("the calldata would be at least {size} bytes: expected at most {max}")]
    CalldataTooLarge {
        /// Its size in bytes, or a lower bound.
        size: usize,
        /// [`MAX_CALLDATA_SIZE`].
        max: usize,
    },
    /// Raw calldata is not `0x`-prefixed hex with an even number of digits.
    #[error(
        "raw calldata ({value:?}) is not hex: expected 0x followed by an even number of hex digits"
    )]
    RawCalldataNotHex {
        /// The text as given.
        value: String,
    },
    /// Raw calldata of 1 to 3 bytes, which would reach a fallback under no selector at all.
    #[error(
        "raw calldata is {len} byte(s): expected none (a plain transfer) or at least 4 (a \
         function selector)"
    )]
    RawCalldataTooShort {
        /// Its length in bytes.
        len: usize,
    },
}

/// Where inside an argument an error is, for messages.
fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" element {path}")
    }
}

/// The start of `text`, short enough to repeat in an error message.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A parsed function signature: the name, the parameter types, the canonical form and the
/// selector. Parse once and encode many calls with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSignature {
    name: String,
    params: Vec<DynSolType>,
    canonical: String,
    selector: Selector,
}

impl FunctionSignature {
    /// Parses `name(type,...)`; see the [module docs](self) for the accepted syntax.
    pub fn parse(signature: &str) -> Result<Self, CalldataError> {
        if signature.len() > MAX_SIGNATURE_LENGTH {
            return Err(CalldataError::SignatureTooLong {
                len: signature.len(),
                max: MAX_SIGNATURE_LENGTH,
            });
        }
        let mut parser = SignatureParser {
            text: signature,
            pos: 0,
        };
        parser.skip_ws();
        let name = parser.word();
        if name.is_empty() && parser.peek() != Some(b'(') {
            return Err(parser.malformed("a function name"));
        }
        if !is_identifier(name) {
            return Err(CalldataError::InvalidFunctionName {
                name: excerpt(name),
            });
        }
        parser.skip_ws();
        if !parser.eat(b'(') {
            return Err(parser.malformed("`(` after the function name"));
        }
        let params = parser.list(None, 0)?;
        parser.skip_ws();
        if parser.peek().is_some() {
            return Err(parser.malformed("the end of the signature after its `)`"));
        }

        let types: Vec<String> = params.iter().map(canonical_type).collect();
        let canonical = format!("{name}({})", types.join(","));
        let selector = Selector::from_slice(&keccak256(canonical.as_bytes())[..4]);
        Ok(Self {
            name: name.to_owned(),
            params,
            canonical,
            selector,
        })
    }

    /// The function name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter types, in order.
    pub fn params(&self) -> &[DynSolType] {
        &self.params
    }

    /// The canonical signature, `uint` spelled `uint256` and no whitespace: what the selector
    /// is hashed from, and how the function should be named in logs and permissions.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The 4-byte selector: the start of the keccak256 hash of [`Self::canonical`]. Session
    /// permissions allow (target, selector) pairs, so this is what the account checks.
    pub fn selector(&self) -> Selector {
        self.selector
    }

    /// Encodes a call: the selector followed by the ABI-encoded arguments, one string per
    /// parameter in the syntax of the [module docs](self).
    pub fn encode<S: AsRef<str>>(&self, args: &[S]) -> Result<Bytes, CalldataError> {
        if args.len() != self.params.len() {
            return Err(CalldataError::ArgumentCount {
                signature: self.canonical.clone(),
                expected: self.params.len(),
                got: args.len(),
            });
        }
        let mut values = Vec::with_capacity(args.len());
        let mut size = Selector::len_bytes();
        for (index, (ty, arg)) in self.params.iter().zip(args).enumerate() {
            let value = parse_argument(index, ty, arg.as_ref())?;
            size = size.saturating_add(param_size(&value));
            if size > MAX_CALLDATA_SIZE {
                return Err(CalldataError::CalldataTooLarge {
                    size,
                    max: MAX_CALLDATA_SIZE,
                });
            }
            values.push(value);
        }
        let mut calldata = Vec::with_capacity(size);
        calldata.extend_from_slice(self.selector.as_slice());
        calldata.extend_from_slice(&DynSolValue::Tuple(values).abi_encode_params());
        Ok(calldata.into())
    }
}

impl FunctionSignature {
    /// Parses `text` as a value of parameter `index` (in the syntax of the
    /// [module docs](self)) and returns the 32-byte word the ABI encodes it as; `None` when
    /// there is no such parameter or its type is dynamic, with no word of its own.
    pub fn param_word(&self, index: usize, text: &str) -> Option<Result<B256, CalldataError>> {
        let ty = self.params.get(index)?;
        if ty.is_dynamic() || ty.minimum_words() != 1 {
            return None;
        }
        Some(parse_argument(index, ty, text).map(|value| B256::from_slice(&value.abi_encode())))
    }
}

impl FromStr for FunctionSignature {
    type Err = CalldataError;

    fn from_str(signature: &str) -> Result<Self, Self::Err> {
        Self::parse(signature)
    }
}

impl fmt::Display for FunctionSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Encodes a call to the function named by `signature` with `args`: the selector followed by
/// the ABI-encoded arguments. See the [module docs](self) for the syntax of both.
pub fn encode_call<S: AsRef<str>>(signature: &str, args: &[S]) -> Result<Bytes, CalldataError> {
    FunctionSignature::parse(signature)?.encode(args)
}

/// Checks calldata given as raw hex: `0x` and an even number of hex digits, either empty (a
/// plain value transfer, which may also be written as the empty string) or at least a
/// 4-byte selector, and at most [`MAX_CALLDATA_SIZE`]. Surrounding whitespace is ignored.
pub fn validate_raw_calldata(hex: &str) -> Result<Bytes, CalldataError> {
    let not_hex = || CalldataError::RawCalldataNotHex {
        value: excerpt(hex),
    };
    if hex.trim().is_empty() {
        return Ok(Bytes::new());
    }
    let digits = hex.trim().strip_prefix("0x").ok_or_else(not_hex)?;
    if digits.len() / 2 > MAX_CALLDATA_SIZE {
        return Err(CalldataError::CalldataTooLarge {
            size: digits.len() / 2,
            max: MAX_CALLDATA_SIZE,
        });
    }
    let calldata = hex::decode(digits).map_err(|_| not_hex())?;
    if (1..Selector::len_bytes()).contains(&calldata.len()) {
        return Err(CalldataError::RawCalldataTooShort {
            len: calldata.len(),
        });
    }
    Ok(calldata.into())
}

/// The canonical spelling of `ty`, as selectors are hashed from. Not
/// [`DynSolType::sol_type_name`], which writes a one-component tuple as `(uint256,)`.
fn canonical_type(ty: &DynSolType) -> String {
    match ty {
        DynSolType::Tuple(types) => {
            format!(
                "({})",
                types
                    .iter()
                    .map(canonical_type)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        DynSolType::Array(inner) => format!("{}[]", canonical_type(inner)),
        DynSolType::FixedArray(inner, length) => format!("{}[{length}]", canonical_type(inner)),
        _ => ty.sol_type_name().into_owned(),
    }
}

fn is_identifier(word: &str) -> bool {
    let mut bytes = word.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && bytes.all(is_word_byte)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// A decimal number as a canonical type suffix writes it: digits, no leading zero.
fn canonical_number(digits: &str) -> Option<usize> {
    if digits.is_empty() || digits.len() > 4 || digits.starts_with('0') {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn elementary_type(word: &str) -> Option<DynSolType> {
    let bits = |digits| canonical_number(digits).filter(|n| (8..=256).contains(n) && n % 8 == 0);
    match word {
        "address" => Some(DynSolType::Address),
        "bool" => Some(DynSolType::Bool),
        "string" => Some(DynSolType::String),
        "bytes" => Some(DynSolType::Bytes),
        "uint" => Some(DynSolType::Uint(256)),
        "int" => Some(DynSolType::Int(256)),
        _ => {
            if let Some(digits) = word.strip_prefix("uint") {
                bits(digits).map(DynSolType::Uint)
            } else if let Some(digits) = word.strip_prefix("int") {
                bits(digits).map(DynSolType::Int)
            } else if let Some(digits) = word.strip_prefix("bytes") {
                canonical_number(digits)
                    .filter(|n| (1..=32).contains(n))
                    .map(DynSolType::FixedBytes)
            } else {
                None
            }
        }
    }
}

/// A position in ASCII text, as both parsers read it: one byte of lookahead.
trait Cursor {
    /// The text and the position in it.
    fn text_and_pos(&self) -> (&str, usize);
    /// Moves past one byte.
    fn advance(&mut self);

    fn peek(&self) -> Option<u8> {
        let (text, pos) = self.text_and_pos();
        text.as_bytes().get(pos).copied()
    }

    /// Moves past `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.advance();
        }
        found
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.advance();
        }
    }
}

/// Implements [`Cursor`] for parsers with `text` and `pos` fields.
macro_rules! cursor {
    ($($parser:ident),*) => {$(
        impl Cursor for $parser<'_> {
            fn text_and_pos(&self) -> (&str, usize) {
                (self.text, self.pos)
            }
            fn advance(&mut self) {
                self.pos += 1;
            }
        }
    )*};
}

cursor!(SignatureParser, ArgumentParser);

/// A hand-written recursive-descent parser for signatures. Tokens are ASCII, so byte offsets
/// are character offsets up to the first error.
struct SignatureParser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> SignatureParser<'a> {
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_word_byte) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn malformed(&self, expected: &'static str) -> CalldataError {
        CalldataError::MalformedSignature {
            signature: excerpt(self.text),
            position: self.pos,
            expected,
        }
    }

    /// A parameter list after its `(`, up to and including the `)`. `param` is the top-level
    /// parameter a tuple belongs to, or `None` for the function's own list.
    fn list(
        &mut self,
        param: Option<usize>,
        tuples: usize,
    ) -> Result<Vec<DynSolType>, CalldataError> {
        let mut types = Vec::new();
        self.skip_ws();
        if param.is_none() && self.eat(b')') {
            return Ok(types);
        }
        loop {
            if types.len() == MAX_PARAMS {
                return Err(CalldataError::TooManyParameters { max: MAX_PARAMS });
            }
            let index = param.unwrap_or(types.len());
            types.push(self.parse_type(index, tuples)?);
            self.skip_ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b')') {
                return Ok(types);
            }
            if self.peek().is_some_and(is_word_byte) {
                let word = self.word();
                if is_identifier(word) {
                    return Err(CalldataError::ParameterName {
                        param: index,
                        name: excerpt(word),
                    });
                }
                self.pos -= word.len();
            }
            return Err(self.malformed("`,` or `)`"));
        }
    }

    /// One type: an elementary type or a tuple, then any array suffixes. `tuples` counts the
    /// tuples around it, which bounds the recursion.
    fn parse_type(&mut self, param: usize, tuples: usize) -> Result<DynSolType, CalldataError> {
        let too_deep = CalldataError::TypeTooDeep {
            param,
            max: MAX_TYPE_DEPTH,
        };
        self.skip_ws();
        let mut ty = if self.eat(b'(') {
            if tuples >= MAX_TYPE_DEPTH {
                return Err(too_deep);
            }
            self.skip_ws();
            if self.peek() == Some(b')') {
                return Err(self.malformed("a type: empty tuples are not ABI types"));
            }
            DynSolType::Tuple(self.list(Some(param), tuples + 1)?)
        } else {
            let word = self.word();
            if word.is_empty() {
                return Err(self.malformed("a type"));
            }
            elementary_type(word).ok_or_else(|| CalldataError::UnknownType {
                param,
                ty: excerpt(word),
            })?
        };
        let mut depth = ty.nesting_depth();
        loop {
            if depth > MAX_TYPE_DEPTH {
                return Err(too_deep);
            }
            self.skip_ws();
            if !self.eat(b'[') {
                return Ok(ty);
            }
            self.skip_ws();
            let length = if self.peek() == Some(b']') {
                None
            } else {
                let word = self.word();
                if word.is_empty() {
                    return Err(self.malformed("an array length or `]`"));
                }
                let length = canonical_number(word)
                    .filter(|n| (1..=MAX_ARRAY_ELEMENTS).contains(n))
                    .ok_or_else(|| CalldataError::InvalidArrayLength {
                        param,
                        length: excerpt(word),
                        max: MAX_ARRAY_ELEMENTS,
                    })?;
                Some(length)
            };
            self.skip_ws();
            if !self.eat(b']') {
                return Err(self.malformed("`]`"));
            }
            ty = match length {
                None => DynSolType::Array(Box::new(ty)),
                Some(length) => DynSolType::FixedArray(Box::new(ty), length),
            };
            depth += 1;
        }
    }
}

/// Parses argument `index` as `ty`.
fn parse_argument(index: usize, ty: &DynSolType, text: &str) -> Result<DynSolValue, CalldataError> {
    if text.len() > MAX_ARGUMENT_LENGTH {
        return Err(CalldataError::ArgumentTooLong {
            index,
            len: text.len(),
            max: MAX_ARGUMENT_LENGTH,
        });
    }
    match ty {
        DynSolType::String => Ok(DynSolValue::String(text.to_owned())),
        DynSolType::Array(_) | DynSolType::FixedArray(..) | DynSolType::Tuple(_) => {
            let text = text.trim();
            let mut parser = ArgumentParser {
                text,
                pos: 0,
                index,
                elements: 0,
            };
            let mut path = String::new();
            let value = parser.value(ty, &mut path)?;
            parser.skip_ws();
            if parser.peek().is_some() {
                return Err(parser.syntax(ty, &path, "the end of the argument"));
            }
            Ok(value)
        }
        _ => scalar(index, "", ty, text.trim()),
    }
}

/// Parses the list syntax of array and tuple arguments, guided by the type.
struct ArgumentParser<'a> {
    text: &'a str,
    pos: usize,
    index: usize,
    /// Array elements parsed so far, over all nesting levels.
    elements: usize,
}

impl<'a> ArgumentParser<'a> {
    fn syntax(&self, ty: &DynSolType, path: &str, expected: impl fmt::Display) -> CalldataError {
        CalldataError::InvalidArgument {
            index: self.index,
            path: path.to_owned(),
            value: excerpt(self.text),
            ty: canonical_type(ty),
            expected: format!("{expected} at offset {}", self.pos),
        }
    }

    fn value(&mut self, ty: &DynSolType, path: &mut String) -> Result<DynSolValue, CalldataError> {
        self.skip_ws();
        match ty {
            DynSolType::Array(inner) => {
                if !self.eat(b'[') {
                    return Err(self.syntax(ty, path, "`[` to open the array"));
                }
                Ok(DynSolValue::Array(self.elements(ty, inner, path)?))
            }
            DynSolType::FixedArray(inner, length) => {
                if !self.eat(b'[') {
                    return Err(self.syntax(ty, path, "`[` to open the array"));
                }
                let elements = self.elements(ty, inner, path)?;
                if elements.len() != *length {
                    return Err(CalldataError::ArrayLength {
                        index: self.index,
                        path: path.clone(),
                        ty: canonical_type(ty),
                        expected: *length,
                        got: elements.len(),
                    });
                }
                Ok(DynSolValue::FixedArray(elements))
            }
            DynSolType::Tuple(types) => {
                let close = match self.peek() {
                    Some(b'[') => b']',
                    Some(b'(') => b')',
                    _ => return Err(self.syntax(ty, path, "`[` or `(` to open the tuple")),
                };
                self.pos += 1;
                let mut components = Vec::with_capacity(types.len());
                for (i, component) in types.iter().enumerate() {
                    if i > 0 {
                        self.skip_ws();
                        if !self.eat(b',') {
                            let left = types.len() - i;
                            return Err(self.syntax(
                                ty,
                                path,
                                format_args!("`,` and {left} more tuple component(s)"),
                            ));
                        }
                    }
                    components.push(self.nested(component, i, path)?);
                }
                self.skip_ws();
                if !self.eat(close) {
                    return Err(self.syntax(
                        ty,
                        path,
                        format_args!(
                            "`{}` after {} tuple component(s)",
                            close as char,
                            types.len()
                        ),
                    ));
                }
                Ok(DynSolValue::Tuple(components))
            }
            _ => {
                let text = if self.peek() == Some(b'"') {
                    Cow::Owned(self.json_string(ty, path)?)
                } else if *ty == DynSolType::String {
                    return Err(self.syntax(ty, path, "a JSON string in double quotes"));
                } else {
                    let token = self.bare_token();
                    if token.is_empty() {
                        return Err(self.syntax(ty, path, "a value"));
                    }
                    Cow::Borrowed(token)
                };
                scalar(self.index, path, ty, &text)
            }
        }
    }

    /// The element or component `i` of the list at `path`.
    fn nested(
        &mut self,
        ty: &DynSolType,
        i: usize,
        path: &mut String,
    ) -> Result<DynSolValue, CalldataError> {
        let len = path.len();
        path.push_str(&format!("[{i}]"));
        let value = self.value(ty, path)?;
        path.truncate(len);
        Ok(value)
    }

    /// The elements of an array after its `[`, up to and including the `]`.
    fn elements(
        &mut self,
        ty: &DynSolType,
        inner: &DynSolType,
        path: &mut String,
    ) -> Result<Vec<DynSolValue>, CalldataError> {
        let mut elements = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Ok(elements);
        }
        loop {
            self.elements += 1;
            if self.elements > MAX_ARRAY_ELEMENTS {
                return Err(CalldataError::TooManyElements {
                    index: self.index,
                    max: MAX_ARRAY_ELEMENTS,
                });
            }
            elements.push(self.nested(inner, elements.len(), path)?);
            self.skip_ws();
            if self.eat(b']') {
                return Ok(elements);
            }
            if !self.eat(b',') {
                return Err(self.syntax(ty, path, "`,` or `]`"));
            }
        }
    }

    /// A value written without quotes: everything up to a delimiter or whitespace.
    fn bare_token(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| !b.is_ascii_whitespace() && !b",[]()\"".contains(&b))
        {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// A JSON string, from its opening quote through its closing one.
    fn json_string(&mut self, ty: &DynSolType, path: &str) -> Result<String, CalldataError> {
        let mut out = String::new();
        self.pos += 1;
        loop {
            let Some(c) = self.text[self.pos..].chars().next() else {
                return Err(self.syntax(ty, path, "a closing `\"`"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let escaped = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            out.push(self.unicode_escape(ty, path)?);
                            continue;
                        }
                        _ => return Err(self.syntax(ty, path, "a JSON escape after `\\`")),
                    };
                    self.pos += 1;
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
    }

    /// The character of a `\uXXXX` escape (after the `u`), or of a surrogate pair of them.
    fn unicode_escape(&mut self, ty: &DynSolType, path: &str) -> Result<char, CalldataError> {
        let invalid = |this: &Self| this.syntax(ty, path, "4 hex digits of a valid `\\u` escape");
        let high = self.hex4().ok_or_else(|| invalid(self))?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !(self.eat(b'\\') && self.eat(b'u')) {
                return Err(invalid(self));
            }
            let low = self.hex4().filter(|low| (0xDC00..0xE000).contains(low));
            let low = low.ok_or_else(|| invalid(self))?;
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| invalid(self))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }
}

/// Parses one elementary value written as text; `path` locates it inside argument `index`.
fn scalar(
    index: usize,
    path: &str,
    ty: &DynSolType,
    text: &str,
) -> Result<DynSolValue, CalldataError> {
    let type_name = || canonical_type(ty);
    let invalid = |expected: String| CalldataError::InvalidArgument {
        index,
        path: path.to_owned(),
        value: excerpt(text),
        ty: type_name(),
        expected,
    };
    let out_of_range = |range: String| CalldataError::OutOfRange {
        index,
        path: path.to_owned(),
        value: excerpt(text),
        ty: type_name(),
        range,
    };
    match *ty {
        DynSolType::Bool => match text {
            "true" => Ok(DynSolValue::Bool(true)),
            "false" => Ok(DynSolValue::Bool(false)),
            _ => Err(invalid("`true` or `false`".into())),
        },
        DynSolType::Address => {
            let digits = text
                .strip_prefix("0x")
                .filter(|d| d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| invalid("0x followed by 40 hex digits".into()))?;
            let lower = digits.bytes().any(|b| b.is_ascii_lowercase());
            let upper = digits.bytes().any(|b| b.is_ascii_uppercase());
            let address = if lower && upper {
                Address::parse_checksummed(text, None).map_err(|_| CalldataError::BadChecksum {
                    index,
                    path: path.to_owned(),
                    value: excerpt(text),
                })?
            } else {
                text.parse::<Address>()
                    .map_err(|_| invalid("0x followed by 40 hex digits".into()))?
            };
            Ok(DynSolValue::Address(address))
        }
        DynSolType::Uint(bits) => {
            let expected = "a decimal integer or 0x-prefixed hex";
            let value = match text.strip_prefix("0x") {
                Some(digits) => parse_digits(digits, 16),
                None => parse_digits(text, 10),
            }
            .map_err(|e| match e {
                DigitsError::Invalid => invalid(expected.into()),
                DigitsError::TooLarge => out_of_range(uint_range(bits)),
            })?;
            if value.bit_len() > bits {
                return Err(out_of_range(uint_range(bits)));
            }
            Ok(DynSolValue::Uint(value, bits))
        }
        DynSolType::Int(bits) => {
            let (negative, digits) = match text.strip_prefix('-') {
                Some(digits) => (true, digits),
                None => (false, text),
            };
            let magnitude = parse_digits(digits, 10).map_err(|e| match e {
                DigitsError::Invalid => invalid("a decimal integer, `-` for negatives".into()),
                DigitsError::TooLarge => out_of_range(int_range(bits)),
            })?;
            // 2^(bits-1): the magnitude of the most negative value, one more than the largest.
            let half = U256::from(1u8) << (bits - 1);
            if (negative && magnitude > half) || (!negative && magnitude >= half) {
                return Err(out_of_range(int_range(bits)));
            }
            let raw = if negative {
                magnitude.wrapping_neg()
            } else {
                magnitude
            };
            Ok(DynSolValue::Int(I256::from_raw(raw), bits))
        }
        DynSolType::FixedBytes(size) => {
            let expected = || format!("0x followed by {} hex digits ({size} bytes)", size * 2);
            let bytes = hex_bytes(text)
                .filter(|b| b.len() == size)
                .ok_or_else(|| invalid(expected()))?;
            let mut word = B256::ZERO;
            word[..size].copy_from_slice(&bytes);
            Ok(DynSolValue::FixedBytes(word, size))
        }
        DynSolType::Bytes => {
            let bytes = hex_bytes(text)
                .ok_or_else(|| invalid("0x followed by an even number of hex digits".into()))?;
            Ok(DynSolValue::Bytes(bytes))
        }
        DynSolType::String => Ok(DynSolValue::String(text.to_owned())),
        // The signature parser never produces other types.
        _ => Err(invalid("a value of a supported type".into())),
    }
}

enum DigitsError {
    Invalid,
    TooLarge,
}

/// An unsigned integer in base 10 or 16, digits only; more than 256 bits is `TooLarge`.
fn parse_digits(digits: &str, radix: u32) -> Result<U256, DigitsError> {
    let valid = |b: u8| {
        if radix == 16 {
            b.is_ascii_hexdigit()
        } else {
            b.is_ascii_digit()
        }
    };
    if digits.is_empty() || !digits.bytes().all(valid) {
        return Err(DigitsError::Invalid);
    }
    let significant = digits.trim_start_matches('0');
    // uint256's largest value has 78 decimal or 64 hex digits; refusing longer input up front
    // keeps the parse linear.
    let max_digits = if radix == 16 { 64 } else { 78 };
    if significant.len() > max_digits {
        return Err(DigitsError::TooLarge);
    }
    if significant.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(significant, u64::from(radix)).map_err(|_| DigitsError::TooLarge)
}

fn uint_range(bits: usize) -> String {
    if bits <= 64 {
        format!("0 to {}", (U256::from(1u8) << bits) - U256::from(1u8))
    } else {
        format!("0 to 2^{bits}-1")
    }
}

fn int_range(bits: usize) -> String {
    if bits <= 64 {
        let half = U256::from(1u8) << (bits - 1);
        format!("-{half} to {}", half - U256::from(1u8))
    } else {
        format!("-2^{0} to 2^{0}-1", bits - 1)
    }
}

/// `0x` and an even number of hex digits, either case.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.strip_prefix("0x")?).ok()
}

/// The bytes `value` takes in an ABI-encoded parameter list, pointer included: computed
/// without encoding, so oversized calldata is refused before it is built.
fn param_size(value: &DynSolValue) -> usize {
    if value.is_dynamic() {
        32usize.saturating_add(tail_size(value))
    } else {
        tail_size(value)
    }
}

/// The bytes of `value`'s own encoding, without the pointer a dynamic value has in its parent.
fn tail_size(value: &DynSolValue) -> usize {
    let sequence = |values: &[DynSolValue]| {
        values
            .iter()
            .fold(0usize, |size, v| size.saturating_add(param_size(v)))
    };
    match value {
        DynSolValue::Bytes(bytes) => 32usize.saturating_add(bytes.len().div_ceil(32) * 32),
        DynSolValue::String(s) => 32usize.saturating_add(s.len().div_ceil(32) * 32),
        DynSolValue::Array(values) => 32usize.saturating_add(sequence(values)),
        DynSolValue::FixedArray(values) | DynSolValue::Tuple(values) => sequence(values),
        _ => 32,
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{address, b256, bytes, fixed_bytes},
        sol,
        sol_types::SolCall,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::{chain::contracts::GameItems, intent::properties::value_of};

    sol! {
        struct Pair { uint256 amount; address to; }
        struct One { uint256 a; }
        function single(One one);
        function everything(
            address[] targets,
            uint256[3] amounts,
            bytes32 tag,
            int8 delta,
            bool flag,
            string memo,
            bytes data,
            Pair[] pairs,
            uint8[][] grid
        );
    }

    const PLAYER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    fn args(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn error(signature: &str, items: &[&str]) -> CalldataError {
        encode_call(signature, &args(items)).unwrap_err()
    }

    /// Asserts that `$error` matches `$pattern`, and shows the error when it does not.
    macro_rules! assert_error {
        ($error:expr, $pattern:pat) => {{
            let error = $error;
            assert!(matches!(error, $pattern), "{error:?}");
        }};
    }

    /// Asserts that `items` are refused as arguments of `signature`, naming the argument.
    #[track_caller]
    fn assert_invalid_argument(signature: &str, items: &[&str]) {
        let error = error(signature, items);
        assert!(
            matches!(error, CalldataError::InvalidArgument { .. }),
            "{signature} with {items:?}: {error:?}"
        );
    }

    fn signature_error(signature: &str) -> CalldataError {
        FunctionSignature::parse(signature).unwrap_err()
    }

    #[test]
    fn transfer_selector_is_the_erc20_one() {
        let signature = FunctionSignature::parse("transfer(address,uint256)").unwrap();
        assert_eq!(signature.selector(), fixed_bytes!("a9059cbb"));
        assert_eq!(signature.canonical(), "transfer(address,uint256)");
        assert_eq!(signature.name(), "transfer");
        assert_eq!(
            signature.params(),
            &[DynSolType::Address, DynSolType::Uint(256)]
        );
        assert_eq!(signature.to_string(), "transfer(address,uint256)");
    }

    #[test]
    fn one_component_tuples_have_no_trailing_comma() {
        let signature = FunctionSignature::parse("single((uint256))").unwrap();
        assert_eq!(signature.canonical(), "single((uint256))");
        assert_eq!(signature.selector(), singleCall::SELECTOR);
        let calldata = signature.encode(&["[5]"]).unwrap();
        let expected = singleCall {
            one: One { a: U256::from(5) },
        }
        .abi_encode();
        assert_eq!(calldata, Bytes::from(expected));
    }

    #[test]
    fn aliases_and_whitespace_are_normalised() {
        let signature: FunctionSignature = "  transfer ( address ,\tuint )  ".parse().unwrap();
        assert_eq!(signature.canonical(), "transfer(address,uint256)");
        assert_eq!(signature.selector(), fixed_bytes!("a9059cbb"));
        let signature =
            FunctionSignature::parse("f(int, uint [ 2 ] [], ( bool , int8 ) [])").unwrap();
        assert_eq!(
            signature.canonical(),
            "f(int256,uint256[2][],(bool,int8)[])"
        );
    }

    #[test]
    fn no_parameters() {
        let signature = FunctionSignature::parse("pause()").unwrap();
        assert_eq!(signature.canonical(), "pause()");
        assert_eq!(signature.encode::<&str>(&[]).unwrap(), bytes!("8456cb59"));
    }

    #[test]
    fn mint_matches_the_game_items_binding() {
        let calldata = encode_call(
            "mint(address,uint256,uint256)",
            &args(&[PLAYER, "7", "250"]),
        )
        .unwrap();
        let expected = GameItems::mintCall {
            to: address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            id: U256::from(7),
            amount: U256::from(250),
        }
        .abi_encode();
        assert_eq!(calldata, Bytes::from(expected));
    }

    #[test]
    fn every_kind_of_argument_matches_sol_encoding() {
        let signature = "everything(address[],uint256[3],bytes32,int8,bool,string,bytes,(uint256,address)[],uint8[][])";
        let calldata = encode_call(
            signature,
            &args(&[
                r#"["0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"]"#,
                "[1, 0x10, \"115792089237316195423570985008687907853269984665640564039457584007913129639935\"]",
                "0x00000000000000000000000000000000000000000000000000000000000000ff",
                "-128",
                "true",
                r#"a "verbatim", [string]"#,
                "0xdeadbeef",
                r#"[(5, 0x70997970c51812dc3a010c7d01b50e0d17dc79c8), ["6", "0x0000000000000000000000000000000000000000"]]"#,
                "[[1,2],[],[255]]",
            ]),
        )
        .unwrap();
        let expected = everythingCall {
            targets: vec![
                address!("70997970c51812dc3a010c7d01b50e0d17dc79c8"),
                address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
            ],
            amounts: [U256::from(1), U256::from(16), U256::MAX],
            tag: b256!("00000000000000000000000000000000000000000000000000000000000000ff"),
            delta: -128,
            flag: true,
            memo: r#"a "verbatim", [string]"#.into(),
            data: bytes!("deadbeef"),
            pairs: vec![
                Pair {
                    amount: U256::from(5),
                    to: address!("70997970c51812dc3a010c7d01b50e0d17dc79c8"),
                },
                Pair {
                    amount: U256::from(6),
                    to: Address::ZERO,
                },
            ],
            grid: vec![vec![1, 2], vec![], vec![255]],
        }
        .abi_encode();
        assert_eq!(calldata, Bytes::from(expected));
    }

    #[test]
    fn strings_in_lists_are_json_strings() {
        let calldata = encode_call(
            "f(string[])",
            &args(&[r#"["a\"b", "\u00e9\ud83d\ude00", "x,]y", "tab\there"]"#]),
        )
        .unwrap();
        let expected = DynSolValue::Tuple(vec![DynSolValue::Array(vec![
            DynSolValue::String("a\"b".into()),
            DynSolValue::String("é😀".into()),
            DynSolValue::String("x,]y".into()),
            DynSolValue::String("tab\there".into()),
        ])])
        .abi_encode_params();
        assert_eq!(calldata[4..], expected[..]);

        assert_invalid_argument("f(string[])", &["[abc]"]);
        assert_invalid_argument("f(string[])", &[r#"["\ud83d"]"#]);
        assert_invalid_argument("f(string[])", &[r#"["\q"]"#]);
        assert_invalid_argument("f(string[])", &[r#"["open"#]);
    }

    #[test]
    fn bytes32_must_be_exactly_32_bytes() {
        let word = "0x1111111111111111111111111111111111111111111111111111111111111111";
        assert!(encode_call("f(bytes32)", &[word]).is_ok());
        let err = error("f(bytes32)", &["0x1111"]);
        assert_eq!(
            err.to_string(),
            r#"argument 0 ("0x1111") is not a bytes32: expected 0x followed by 64 hex digits (32 bytes)"#
        );
        assert_invalid_argument("f(bytes4)", &["a9059cbb"]);
        assert!(encode_call("f(bytes4)", &["0xA9059CBB"]).is_ok());
    }

    #[test]
    fn bytes_need_an_even_number_of_digits() {
        assert_eq!(encode_call("f(bytes)", &["0x"]).unwrap().len(), 4 + 64);
        let err = error("f(bytes)", &["0x123"]);
        assert!(
            err.to_string()
                .contains("expected 0x followed by an even number of hex digits")
        );
        assert_invalid_argument("f(bytes)", &["1234"]);
    }

    #[test]
    fn signed_integers_are_range_checked() {
        let encoded = encode_call("f(int8)", &["-1"]).unwrap();
        assert_eq!(encoded[4..], [0xff; 32]);
        assert!(encode_call("f(int8)", &["127"]).is_ok());
        assert!(encode_call("f(int8)", &["-128"]).is_ok());
        assert!(encode_call("f(int8)", &["-0"]).is_ok());
        assert_eq!(
            error("f(int8)", &["-129"]).to_string(),
            r#"argument 0 ("-129") is out of range for int8: expected -128 to 127"#
        );
        assert_error!(error("f(int8)", &["128"]), CalldataError::OutOfRange { .. });
        assert_invalid_argument("f(int8)", &["0x01"]);
        assert_invalid_argument("f(int8)", &["+1"]);
        let min = "-57896044618658097711785492504343953926634992332820282019728792003956564819968";
        assert!(encode_call("f(int256)", &[min]).is_ok());
        let below = min.replace("819968", "819969");
        assert_error!(
            error("f(int256)", &[below.as_str()]),
            CalldataError::OutOfRange { .. }
        );
        assert_eq!(
            error(
                "f(int256)",
                &["57896044618658097711785492504343953926634992332820282019728792003956564819968"]
            )
            .to_string(),
            "argument 0 (\"57896044618658097711785492504343953926634992332820282019728792003956564819968\") \
             is out of range for int256: expected -2^255 to 2^255-1"
        );
    }

    #[test]
    fn unsigned_integers_are_range_checked() {
        assert!(encode_call("f(uint8)", &["255"]).is_ok());
        assert!(encode_call("f(uint8)", &["0xff"]).is_ok());
        assert!(encode_call("f(uint8)", &[" 007 "]).is_ok());
        assert_eq!(
            error("f(uint8)", &["256"]).to_string(),
            r#"argument 0 ("256") is out of range for uint8: expected 0 to 255"#
        );
        assert_error!(
            error("f(uint8)", &["0x100"]),
            CalldataError::OutOfRange { .. }
        );
        assert_invalid_argument("f(uint8)", &["-1"]);
        assert_invalid_argument("f(uint256)", &["1e18"]);
        assert_invalid_argument("f(uint256)", &["1.5"]);
        assert_invalid_argument("f(uint256)", &["0x"]);
        assert_invalid_argument("f(uint256)", &[""]);
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert!(encode_call("f(uint256)", &[max]).is_ok());
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_error!(
            error("f(uint256)", &[over]),
            CalldataError::OutOfRange { .. }
        );
        let huge = "9".repeat(10_000);
        assert_error!(
            error("f(uint256)", &[huge.as_str()]),
            CalldataError::OutOfRange { .. }
        );
        assert_eq!(
            error("mint(address,uint256,uint256)", &[PLAYER, "7", "abc"]).to_string(),
            r#"argument 2 ("abc") is not a uint256: expected a decimal integer or 0x-prefixed hex"#
        );
    }

    #[test]
    fn addresses_must_carry_a_valid_checksum_when_mixed_case() {
        assert!(encode_call("f(address)", &[PLAYER]).is_ok());
        assert!(encode_call("f(address)", &[PLAYER.to_lowercase()]).is_ok());
        assert!(encode_call("f(address)", &[format!("0x{}", PLAYER[2..].to_uppercase())]).is_ok());
        let typo = "0x70997970C51812dc3A010C7d01b50e0d17dc79c8";
        assert_eq!(
            error("f(address)", &[typo]),
            CalldataError::BadChecksum {
                index: 0,
                path: String::new(),
                value: typo.into()
            }
        );
        let err = error("f(address[])", &[&format!("[{PLAYER}, {typo}]")]);
        assert!(
            err.to_string()
                .starts_with("argument 0 element [1] (\"0x7099"),
            "{err}"
        );
        assert_invalid_argument("f(address)", &[&PLAYER[2..]]);
        assert_invalid_argument("f(address)", &["0x1234"]);
    }

    #[test]
    fn bools_are_true_or_false() {
        assert!(encode_call("f(bool,bool)", &["true", "false"]).is_ok());
        assert_invalid_argument("f(bool)", &["1"]);
        assert_invalid_argument("f(bool)", &["True"]);
    }

    #[test]
    fn strings_are_verbatim() {
        let calldata = encode_call("f(string)", &["  spaced \"quoted\"  "]).unwrap();
        let expected =
            DynSolValue::Tuple(vec![DynSolValue::String("  spaced \"quoted\"  ".into())])
                .abi_encode_params();
        assert_eq!(calldata[4..], expected[..]);
    }

    #[test]
    fn wrong_argument_count_names_both_counts() {
        let err = error("mint(address,uint256,uint256)", &[PLAYER, "1"]);
        assert_eq!(
            err.to_string(),
            "mint(address,uint256,uint256) takes 3 argument(s), got 2"
        );
    }

    #[test]
    fn fixed_arrays_need_exactly_their_length() {
        assert!(encode_call("f(uint256[2])", &["[1,2]"]).is_ok());
        let err = error("f(uint256[2])", &["[1,2,3]"]);
        assert_eq!(
            err.to_string(),
            "argument 0 has 3 element(s): uint256[2] takes exactly 2"
        );
        let err = error("f(uint256[2][])", &["[[1,2],[3]]"]);
        assert_eq!(
            err.to_string(),
            "argument 0 element [1] has 1 element(s): uint256[2] takes exactly 2"
        );
    }

    #[test]
    fn list_syntax_errors_say_where() {
        let err = error("f(uint256[])", &["[1,2"]);
        assert_eq!(
            err.to_string(),
            r#"argument 0 ("[1,2") is not a uint256[]: expected `,` or `]` at offset 4"#
        );
        let err = error("f(uint256[])", &["[1,x]"]);
        assert_eq!(
            err.to_string(),
            r#"argument 0 element [1] ("x") is not a uint256: expected a decimal integer or 0x-prefixed hex"#
        );
        assert_invalid_argument("f(uint256[])", &["[1,]"]);
        assert_invalid_argument("f(uint256[])", &["1,2"]);
        assert_invalid_argument("f(uint256[])", &["[1] x"]);
        assert!(matches!(
            error("f((uint256,bool))", &["(1)"]),
            CalldataError::InvalidArgument { .. }
        ));
        assert!(matches!(
            error("f((uint256,bool))", &["(1,true,2)"]),
            CalldataError::InvalidArgument { .. }
        ));
        assert!(matches!(
            error("f((uint256,bool))", &["(1,true]"]),
            CalldataError::InvalidArgument { .. }
        ));
        assert!(encode_call("f(uint256[])", &[" [ ] "]).is_ok());
    }

    #[test]
    fn hostile_arguments_hit_named_limits() {
        let many = format!("[{}]", vec!["0"; MAX_ARRAY_ELEMENTS + 1].join(","));
        assert_eq!(
            error("f(uint8[])", &[many.as_str()]),
            CalldataError::TooManyElements {
                index: 0,
                max: MAX_ARRAY_ELEMENTS
            }
        );
        let nested = format!("[{}]", vec!["[0,0]"; MAX_ARRAY_ELEMENTS / 2 + 1].join(","));
        assert_error!(
            error("f(uint8[][])", &[nested.as_str()]),
            CalldataError::TooManyElements { .. }
        );

        let big = format!("0x{}", "ab".repeat(MAX_CALLDATA_SIZE));
        assert_error!(
            error("f(bytes)", &[big.as_str()]),
            CalldataError::CalldataTooLarge { .. }
        );
        let huge = "x".repeat(MAX_ARGUMENT_LENGTH + 1);
        assert_eq!(
            error("f(string)", &[huge.as_str()]),
            CalldataError::ArgumentTooLong {
                index: 0,
                len: MAX_ARGUMENT_LENGTH + 1,
                max: MAX_ARGUMENT_LENGTH
            }
        );

        // Offending values are shortened in messages.
        let long = "z".repeat(10_000);
        let message = error("f(uint256)", &[long.as_str()]).to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("zzz…"));
    }

    #[test]
    fn malformed_signatures_are_refused_with_a_reason() {
        use CalldataError::*;
        let malformed = |s: &str| matches!(signature_error(s), MalformedSignature { .. });
        for signature in [
            "",
            "   ",
            "mint",
            "mint(",
            "mint(address",
            "mint(address,)",
            "mint(,)",
            "mint(address))",
            "mint(address)x",
            "mi-nt(address)",
            "f(uint256[)",
            "f(uint256[-1])",
            "f(())",
            "f(address;)",
            "f(uint256]",
        ] {
            assert!(
                malformed(signature),
                "{signature:?}: {:?}",
                signature_error(signature)
            );
        }
        assert_eq!(
            signature_error("mint(address"),
            MalformedSignature {
                signature: "mint(address".into(),
                position: 12,
                expected: "`,` or `)`"
            }
        );
        assert_error!(
            signature_error("1mint(address)"),
            InvalidFunctionName { .. }
        );
        assert_eq!(
            signature_error("(address)"),
            InvalidFunctionName {
                name: String::new()
            }
        );
        for ty in [
            "uint7", "uint264", "uint08", "bytes0", "bytes33", "byte", "function", "fixed",
            "Address", "uint256x",
        ] {
            let err = signature_error(&format!("f(bool,{ty})"));
            assert_eq!(
                err,
                UnknownType {
                    param: 1,
                    ty: ty.into()
                }
            );
        }
        assert_eq!(
            signature_error("transfer(address to, uint256 amount)"),
            ParameterName {
                param: 0,
                name: "to".into()
            }
        );
        assert_error!(signature_error("f(uint 256)"), MalformedSignature { .. });
        assert_error!(signature_error("f(uint256[0])"), InvalidArrayLength { .. });
        assert_error!(signature_error("f(uint256[01])"), InvalidArrayLength { .. });
        assert_error!(
            signature_error("f(uint256[1025])"),
            InvalidArrayLength { .. }
        );
        assert!(FunctionSignature::parse("f(uint256[1024])").is_ok());
    }

    #[test]
    fn hostile_signatures_hit_named_limits() {
        use CalldataError::*;
        assert!(FunctionSignature::parse("f(uint256[][][][])").is_ok());
        assert_eq!(
            signature_error("f(bool,uint256[][][][][])"),
            TypeTooDeep { param: 1, max: 4 }
        );
        assert!(FunctionSignature::parse("f(((((uint256)))))").is_ok());
        assert_eq!(
            signature_error("f((((((uint256))))))"),
            TypeTooDeep { param: 0, max: 4 }
        );
        assert_eq!(
            signature_error("f(((uint256[][])[]))"),
            TypeTooDeep { param: 0, max: 4 }
        );
        let deep = format!("f({}uint256{})", "(".repeat(100_000), ")".repeat(100_000));
        assert!(matches!(signature_error(&deep), SignatureTooLong { .. }));
        let deep = format!("f({}uint256{})", "(".repeat(500), ")".repeat(500));
        assert!(matches!(signature_error(&deep), TypeTooDeep { .. }));
        let arrays = format!("f(uint256{})", "[]".repeat(400));
        assert!(matches!(signature_error(&arrays), TypeTooDeep { .. }));

        let params = |n: usize| format!("f({})", vec!["bool"; n].join(","));
        assert!(FunctionSignature::parse(&params(MAX_PARAMS)).is_ok());
        assert_eq!(
            signature_error(&params(MAX_PARAMS + 1)),
            TooManyParameters { max: MAX_PARAMS }
        );
        let tuple = format!("f(({}))", vec!["bool"; MAX_PARAMS + 1].join(","));
        assert_eq!(
            signature_error(&tuple),
            TooManyParameters { max: MAX_PARAMS }
        );
        let long = format!("f{}()", "x".repeat(MAX_SIGNATURE_LENGTH));
        assert_eq!(
            signature_error(&long),
            SignatureTooLong {
                len: MAX_SIGNATURE_LENGTH + 3,
                max: MAX_SIGNATURE_LENGTH
            }
        );
    }

    #[test]
    fn raw_calldata() {
        assert_eq!(validate_raw_calldata("0x").unwrap(), Bytes::new());
        assert_eq!(
            validate_raw_calldata(" 0xa9059cbb ").unwrap(),
            bytes!("a9059cbb")
        );
        assert_eq!(
            validate_raw_calldata("0x123456"),
            Err(CalldataError::RawCalldataTooShort { len: 3 })
        );
        assert_eq!(validate_raw_calldata("").unwrap(), Bytes::new());
        for bad in ["a9059cbb", "0xa9059cb", "0xzz", "0X12345678"] {
            assert!(
                matches!(
                    validate_raw_calldata(bad),
                    Err(CalldataError::RawCalldataNotHex { .. })
                ),
                "{bad:?}"
            );
        }
        let big = format!("0x{}", "00".repeat(MAX_CALLDATA_SIZE + 1));
        assert_eq!(
            validate_raw_calldata(&big),
            Err(CalldataError::CalldataTooLarge {
                size: MAX_CALLDATA_SIZE + 1,
                max: MAX_CALLDATA_SIZE
            })
        );
        assert!(validate_raw_calldata(&format!("0x{}", "00".repeat(MAX_CALLDATA_SIZE))).is_ok());
    }

    // --- property tests -------------------------------------------------------------------

    /// A simple type, a value of it, and the value written as an argument.
    #[derive(Debug, Clone)]
    struct Case {
        ty: DynSolType,
        value: DynSolValue,
        text: String,
    }

    fn bits() -> impl Strategy<Value = usize> {
        (1usize..=32).prop_map(|n| n * 8)
    }

    fn elementary_type() -> impl Strategy<Value = DynSolType> {
        prop_oneof![
            Just(DynSolType::Address),
            Just(DynSolType::Bool),
            bits().prop_map(DynSolType::Uint),
            bits().prop_map(DynSolType::Int),
            (1usize..=32).prop_map(DynSolType::FixedBytes),
            Just(DynSolType::Bytes),
            Just(DynSolType::String),
        ]
    }

    /// An argument of an elementary type, a list of one, or a tuple of several, with its
    /// text as a whole argument.
    fn case() -> impl Strategy<Value = Case> {
        let array = elementary_type().prop_map(|ty| DynSolType::Array(Box::new(ty)));
        let fixed = (elementary_type(), 1usize..5)
            .prop_map(|(ty, len)| DynSolType::FixedArray(Box::new(ty), len));
        let tuple = proptest::collection::vec(elementary_type(), 1..4).prop_map(DynSolType::Tuple);
        prop_oneof![4 => elementary_type(), 2 => array, 1 => fixed, 1 => tuple].prop_flat_map(
            |ty| {
                value_of(&ty, true).prop_map(move |(value, text)| Case {
                    ty: ty.clone(),
                    value,
                    text,
                })
            },
        )
    }

    /// Text built from signature tokens, so the parser gets past its first character.
    fn signature_like() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            r"[a-z_ ]{0,6}\((uint|int|bytes|address|bool|string|[0-9]|\[|\]|\(|\)|,| |x){0,30}\)?",
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_input_never_panics(
            signature in prop_oneof![any::<String>(), signature_like()],
            args in proptest::collection::vec(any::<String>(), 0..4),
        ) {
            let _ = encode_call(&signature, &args);
            let _ = validate_raw_calldata(&signature);
        }

        #[test]
        fn arbitrary_arguments_never_panic(
            case in case(),
            text in prop_oneof![
                any::<String>(),
                proptest::string::string_regex(r#"[\[\]\(\),"0-9a-fx\\u -]{0,40}"#).unwrap(),
            ],
        ) {
            let signature = format!("f({})", canonical_type(&case.ty));
            let _ = encode_call(&signature, &[text]);
        }

        #[test]
        fn formatted_values_round_trip(cases in proptest::collection::vec(case(), 0..5)) {
            let types: Vec<_> = cases.iter().map(|c| canonical_type(&c.ty)).collect();
            let signature = FunctionSignature::parse(&format!("f({})", types.join(","))).unwrap();
            let texts: Vec<_> = cases.iter().map(|c| c.text.clone()).collect();
            let calldata = signature.encode(&texts).unwrap();

            let values = DynSolValue::Tuple(cases.into_iter().map(|c| c.value).collect());
            let params = values.abi_encode_params();
            prop_assert_eq!(&calldata[..4], &signature.selector()[..]);
            prop_assert_eq!(&calldata[4..], &params[..]);
            let DynSolValue::Tuple(values) = values else { unreachable!() };
            let size = values.iter().map(param_size).sum::<usize>();
            prop_assert_eq!(size, params.len());
        }
    }
}
