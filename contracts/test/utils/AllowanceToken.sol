// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice An OpenZeppelin ERC-20 with an open `mint` and the `increaseAllowance` that
/// OpenZeppelin 5 dropped, so that spend limits can be shown to count it.
contract AllowanceToken is ERC20 {
    constructor() ERC20("Allowance Token", "ALLOW") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function increaseAllowance(address spender, uint256 addedValue) external returns (bool) {
        _approve(msg.sender, spender, allowance(msg.sender, spender) + addedValue);
        return true;
    }
}
