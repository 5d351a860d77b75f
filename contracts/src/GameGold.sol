// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title GameGold
/// @notice A small ERC-20 game currency, the token that session-key spend limits guard in tests
/// and in the local stack. Anyone may claim gold with `mint`, as players claim items from
/// GameItems; the token has ERC-2612 `permit` too, so every way of spending it is reachable.
contract GameGold is ERC20, ERC20Permit {
    constructor() ERC20("Game Gold", "GOLD") ERC20Permit("Game Gold") {}

    /// @notice Mints `amount` gold to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
