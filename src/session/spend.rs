//! Which calls spend a limited asset, and how much: the off-chain reading of the token
//! functions SessionKeyAccount counts against a spend limit. It reads calldata exactly as the
//! account does, so the two agree on every encoding, odd ones included.

use alloy::primitives::{Address, FixedBytes, U256, fixed_bytes};

use crate::session::permissions::{Asset, argument};

type Selector = FixedBytes<4>;

const TRANSFER: Selector = fixed_bytes!("a9059cbb");
const TRANSFER_FROM: Selector = fixed_bytes!("23b872dd");
const APPROVE: Selector = fixed_bytes!("095ea7b3");
const INCREASE_ALLOWANCE: Selector = fixed_bytes!("39509351");
const PERMIT: Selector = fixed_bytes!("d505accf");
const SAFE_TRANSFER_FROM: Selector = fixed_bytes!("42842e0e");
const SAFE_TRANSFER_FROM_DATA: Selector = fixed_bytes!("b88d4fde");
const SET_APPROVAL_FOR_ALL: Selector = fixed_bytes!("a22cb465");
const SAFE_TRANSFER_FROM_1155: Selector = fixed_bytes!("f242432a");
const SAFE_BATCH_TRANSFER_FROM: Selector = fixed_bytes!("2eb2c2d6");

/// Why a call to a limited token is refused before anything is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    /// Approving every token at once has no amount a limit could count.
    #[error("setApprovalForAll(…, true) would let the operator move every token, past any limit")]
    Unbounded,
    /// An address parameter with bits above its 20 bytes.
    #[error("parameter {param} is not a canonically encoded address")]
    NotCanonical {
        /// Its position.
        param: usize,
    },
    /// Calldata too short for the function's parameters, or arrays that do not fit.
    #[error("the calldata is too short for the function's parameters")]
    Malformed,
}

/// One amount a call spends: of ERC-1155 `id`, or of the token as a whole (id 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spend {
    /// The ERC-1155 id; 0 for other assets.
    pub id: U256,
    /// The amount: base units, or tokens for ERC-721.
    pub amount: U256,
}

/// What calldata `data` to a token limited as `asset` spends of `account`'s holdings. Only
/// the functions that move or approve the account's own tokens count.
pub fn spends(asset: Asset, data: &[u8], account: Address) -> Result<Vec<Spend>, SpendError> {
    let Some(selector) = data.get(..4).map(Selector::from_slice) else {
        return Ok(Vec::new());
    };
    let whole = |amount| {
        Ok(vec![Spend {
            id: U256::ZERO,
            amount,
        }])
    };
    let from_account = |param| Ok::<_, SpendError>(address(data, param)? == account);
    match asset {
        Asset::Native => Ok(Vec::new()),
        Asset::Erc20 => {
            if [TRANSFER, APPROVE, INCREASE_ALLOWANCE].contains(&selector) {
                return whole(word(data, 1)?);
            }
            if [TRANSFER_FROM, PERMIT].contains(&selector) && from_account(0)? {
                return whole(word(data, 2)?);
            }
            Ok(Vec::new())
        }
        _ if selector == SET_APPROVAL_FOR_ALL => {
            if word(data, 1)? != U256::ZERO {
                return Err(SpendError::Unbounded);
            }
            Ok(Vec::new())
        }
        Asset::Erc721 => {
            if selector == APPROVE {
                let approves = word(data, 0)? != U256::ZERO;
                return whole(U256::from(u8::from(approves)));
            }
            if [TRANSFER_FROM, SAFE_TRANSFER_FROM, SAFE_TRANSFER_FROM_DATA].contains(&selector)
                && from_account(0)?
            {
                return whole(U256::from(1));
            }
            Ok(Vec::new())
        }
        Asset::Erc1155 => {
            if selector == SAFE_TRANSFER_FROM_1155 && from_account(0)? {
                return Ok(vec![Spend {
                    id: word(data, 2)?,
                    amount: word(data, 3)?,
                }]);
            }
            if selector == SAFE_BATCH_TRANSFER_FROM && from_account(0)? {
                let ids = array(data, 2)?;
                let amounts = array(data, 3)?;
                if ids.len() != amounts.len() {
                    return Err(SpendError::Malformed);
                }
                return Ok(ids
                    .into_iter()
                    .zip(amounts)
                    .map(|(id, amount)| Spend { id, amount })
                    .collect());
            }
            Ok(Vec::new())
        }
    }
}

fn word(data: &[u8], param: usize) -> Result<U256, SpendError> {
    argument(data, param).ok_or(SpendError::Malformed)
}

fn address(data: &[u8], param: usize) -> Result<Address, SpendError> {
    let word = word(data, param)?;
    if word >> 160 != U256::ZERO {
        return Err(SpendError::NotCanonical { param });
    }
    Ok(Address::from_word(word.into()))
}

/// A dynamic `uint256[]` parameter, followed through its head offset as an ABI decoder does.
fn array(data: &[u8], param: usize) -> Result<Vec<U256>, SpendError> {
    let offset = usize::try_from(word(data, param)?).map_err(|_| SpendError::Malformed)?;
    if offset > data.len() {
        return Err(SpendError::Malformed);
    }
    let length_at = 4 + offset;
    let length = data
        .get(length_at..length_at + 32)
        .map(U256::from_be_slice)
        .ok_or(SpendError::Malformed)?;
    let elements_at = length_at + 32;
    let room = (data.len() - elements_at) / 32;
    let length = usize::try_from(length)
        .ok()
        .filter(|length| *length <= room)
        .ok_or(SpendError::Malformed)?;
    Ok((0..length)
        .map(|index| {
            let at = elements_at + 32 * index;
            U256::from_be_slice(&data[at..at + 32])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::address,
        sol,
        sol_types::{SolCall, SolValue},
    };

    use super::*;

    sol! {
        function transfer(address to, uint256 amount);
        function transferFrom(address from, address to, uint256 amount);
        function setApprovalForAll(address operator, bool approved);
        function safeBatchTransferFrom(address from, address to, uint256[] ids, uint256[] amounts, bytes data);
    }

    const ACCOUNT: Address = address!("00000000000000000000000000000000000000aa");
    const OTHER: Address = address!("00000000000000000000000000000000000000bb");

    fn one(amount: u64) -> Vec<Spend> {
        vec![Spend {
            id: U256::ZERO,
            amount: U256::from(amount),
        }]
    }

    #[test]
    fn erc20_counts_transfers_and_approvals_of_the_accounts_own_tokens() {
        let transfer = transferCall {
            to: OTHER,
            amount: U256::from(7),
        }
        .abi_encode();
        assert_eq!(spends(Asset::Erc20, &transfer, ACCOUNT), Ok(one(7)));
        let from_account = transferFromCall {
            from: ACCOUNT,
            to: OTHER,
            amount: U256::from(5),
        }
        .abi_encode();
        assert_eq!(spends(Asset::Erc20, &from_account, ACCOUNT), Ok(one(5)));
        let from_other = transferFromCall {
            from: OTHER,
            to: ACCOUNT,
            amount: U256::from(5),
        }
        .abi_encode();
        assert_eq!(spends(Asset::Erc20, &from_other, ACCOUNT), Ok(Vec::new()));
        // The same selector reads as one ERC-721 token.
        assert_eq!(spends(Asset::Erc721, &from_account, ACCOUNT), Ok(one(1)));
    }

    #[test]
    fn dirty_address_bits_and_short_calldata_are_refused() {
        let mut dirty = transferFromCall {
            from: ACCOUNT,
            to: OTHER,
            amount: U256::from(5),
        }
        .abi_encode();
        dirty[4] = 1;
        assert_eq!(
            spends(Asset::Erc20, &dirty, ACCOUNT),
            Err(SpendError::NotCanonical { param: 0 })
        );
        let short = &transferCall {
            to: OTHER,
            amount: U256::from(7),
        }
        .abi_encode()[..40];
        assert_eq!(
            spends(Asset::Erc20, short, ACCOUNT),
            Err(SpendError::Malformed)
        );
    }

    #[test]
    fn approving_every_token_is_unbounded() {
        let all = setApprovalForAllCall {
            operator: OTHER,
            approved: true,
        }
        .abi_encode();
        assert_eq!(
            spends(Asset::Erc1155, &all, ACCOUNT),
            Err(SpendError::Unbounded)
        );
        let none = setApprovalForAllCall {
            operator: OTHER,
            approved: false,
        }
        .abi_encode();
        assert_eq!(spends(Asset::Erc721, &none, ACCOUNT), Ok(Vec::new()));
    }

    #[test]
    fn a_batch_is_read_through_its_offsets_however_they_are_laid_out() {
        let call = safeBatchTransferFromCall {
            from: ACCOUNT,
            to: OTHER,
            ids: vec![U256::from(1), U256::from(2)],
            amounts: vec![U256::from(10), U256::from(20)],
            data: Default::default(),
        };
        let expected = vec![
            Spend {
                id: U256::from(1),
                amount: U256::from(10),
            },
            Spend {
                id: U256::from(2),
                amount: U256::from(20),
            },
        ];
        assert_eq!(
            spends(Asset::Erc1155, &call.abi_encode(), ACCOUNT),
            Ok(expected.clone())
        );
        // Both arrays at one offset: the decoder reads the ids as the amounts too.
        let mut overlapping = call.abi_encode();
        let ids_offset = overlapping[4 + 64..4 + 96].to_vec();
        overlapping[4 + 96..4 + 128].copy_from_slice(&ids_offset);
        let read = spends(Asset::Erc1155, &overlapping, ACCOUNT).unwrap();
        assert_eq!(read[1].amount, U256::from(2));
        // An array longer than the calldata is malformed.
        let mut long = call.abi_encode();
        let at = 4 + usize::try_from(U256::from_be_slice(&ids_offset)).unwrap();
        long[at..at + 32].copy_from_slice(&U256::from(1_000).abi_encode());
        assert_eq!(
            spends(Asset::Erc1155, &long, ACCOUNT),
            Err(SpendError::Malformed)
        );
    }
}
