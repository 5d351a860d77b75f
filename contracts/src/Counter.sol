// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Counter
/// @notice The call target of the bundler JSON-RPC's benchmark and tests: one 8-byte counter
/// per caller, so every operation of a benchmark writes one warm-or-cold slot of its own and
/// costs the same whatever else the bundle carries.
contract Counter {
    /// @notice How many times each caller has counted.
    mapping(address => uint64) public counts;

    /// @notice Emitted on every count, so a test can tell each operation's execution apart.
    event Counted(address indexed caller, uint64 count);

    /// @notice Adds one to the caller's counter.
    function count() external {
        uint64 next = counts[msg.sender] + 1;
        counts[msg.sender] = next;
        emit Counted(msg.sender, next);
    }
}
