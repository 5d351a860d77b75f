// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";

/// @notice What the P-256 precompile (RIP-7212, EIP-7951) does, for a test EVM that lacks it:
/// etched at 0x100, it takes the 160 bytes `h ‖ r ‖ s ‖ x ‖ y` and returns 32 bytes holding 1
/// for a valid signature, and nothing at all for an invalid signature or malformed input. Like
/// the real precompile it accepts high-s signatures; it checks them with OpenZeppelin's
/// `P256.verifySolidity` after normalising s to low s.
///
/// Its gas is NOT the precompile's: it runs the Solidity verifier (about 230,000 gas), where
/// the real precompile costs 6,900 gas under EIP-7951 (3,450 under RIP-7212). Gas figures of the
/// precompile path measured with it are upper bounds.
///
/// It must be etched before the account implementation is deployed, since the implementation
/// decides once, in its constructor, whether the chain serves the precompile.
contract P256PrecompileStandIn {
    uint256 internal constant N =
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551;

    fallback(bytes calldata input) external returns (bytes memory) {
        if (input.length != 160) return "";
        (bytes32 h, bytes32 r, bytes32 s, bytes32 x, bytes32 y) =
            abi.decode(input, (bytes32, bytes32, bytes32, bytes32, bytes32));
        if (uint256(s) > N / 2 && uint256(s) < N) s = bytes32(N - uint256(s));
        if (!P256.verifySolidity(h, r, s, x, y)) return "";
        return abi.encode(uint256(1));
    }
}
