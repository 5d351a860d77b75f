// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {console} from "./utils/TestBase.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Gas of the two ops the relayer sends most: the first op of an account (deploy and
/// register a session key) and a session-key mint. Each test bundles exactly one op; the gas of
/// the handleOps call is printed with `forge test -vv`.
contract GasTest is AccountTestBase {
    function _measure(string memory label, PackedUserOperation memory op)
        internal
        returns (uint256 gasUsed)
    {
        PackedUserOperation[] memory ops = _one(op);
        vm.prank(bundler, bundler);
        uint256 before = gasleft();
        entryPoint.handleOps(ops, beneficiary);
        gasUsed = before - gasleft();
        console.log(label, gasUsed);
    }

    function test_gas_registerSessionKeyWithDeploy() public {
        address predicted = factory.getAddress(owner, 0);
        vm.deal(predicted, ACCOUNT_FUNDING);
        SessionKeyAccount.SessionPermissions memory permissions = _permissions(
            100,
            0.01 ether,
            0.1 ether,
            _list(
                _allow(address(items), GameItems.mint.selector),
                _allow(address(items), GameItems.buy.selector)
            )
        );
        PackedUserOperation memory op = _signPersonal(
            _op(
                predicted,
                _initCode(owner, 0),
                _registerCallData(predicted, session, NOW - 1, NOW + 1 days, permissions)
            ),
            ownerKey
        );

        _measure("handleOps gas (deploy + register session key)", op);

        SessionKeyAccount account = SessionKeyAccount(payable(predicted));
        vm.assertTrue(account.getSessionKey(session).registered, "key registered");
        vm.assertTrue(
            account.isCallAllowed(session, address(items), GameItems.buy.selector), "buy allowed"
        );
    }

    function test_gas_sessionKeyMint() public {
        SessionKeyAccount account = _deployWithSession(_mintPermissions(100));
        PackedUserOperation memory op = _opBy(account, sessionKey, _mintCall(address(account)));

        _measure("handleOps gas (session key mint)", op);

        vm.assertEq(_balance(account), 1, "item minted");
        vm.assertEq(_callsUsed(account, session), 1, "call counted");
    }
}
