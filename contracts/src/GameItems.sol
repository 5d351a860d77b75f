// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";

/// @title GameItems
/// @notice A small ERC-1155 game-item contract, the target that session keys act on in tests
/// and in the local stack. Players claim free items with `mint` and buy priced ones with `buy`.
contract GameItems is ERC1155 {
    /// @notice Native price of one item bought with `buy`.
    uint256 public constant PRICE = 0.001 ether;

    error WrongPayment(uint256 expected, uint256 paid);

    constructor() ERC1155("https://items.latchkey.invalid/{id}.json") {}

    /// @notice Mints `amount` of item `id` to `to`.
    function mint(address to, uint256 id, uint256 amount) external {
        _mint(to, id, amount, "");
    }

    /// @notice Buys `amount` of item `id` for the caller at `PRICE` each.
    function buy(uint256 id, uint256 amount) external payable {
        uint256 expected = PRICE * amount;
        if (msg.value != expected) revert WrongPayment(expected, msg.value);
        _mint(msg.sender, id, amount, "");
    }

    /// @notice Burns `amount` of the caller's item `id`.
    function burn(uint256 id, uint256 amount) external {
        _burn(msg.sender, id, amount);
    }
}
