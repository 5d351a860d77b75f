// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {SessionKeyAccountFactory} from "../src/SessionKeyAccountFactory.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";

/// @notice Rule 10: the factory deploys accounts at counterfactual addresses, idempotently, and
/// an account deploys itself in its first user operation.
contract SessionKeyAccountFactoryTest is AccountTestBase {
    uint256 internal constant SALT = 42;

    function test_factory_getAddressMatchesDeployedAccount() public {
        address predicted = factory.getAddress(owner, SALT);
        vm.assertEq(predicted.code.length, 0, "not deployed yet");

        SessionKeyAccount account = _deploy(SALT, "");
        vm.assertEq(address(account), predicted, "deployed at the predicted address");
        vm.assertGt(predicted.code.length, 0, "deployed");
        vm.assertEq(account.owner(), owner, "owner set");
        vm.assertEq(address(account.entryPoint()), address(entryPoint), "EntryPoint set");
        vm.assertEq(factory.getAddress(owner, SALT), predicted, "prediction stable after deploy");
    }

    function test_factory_accountDeploysInItsFirstOp() public {
        address predicted = factory.getAddress(owner, SALT);
        vm.deal(predicted, ACCOUNT_FUNDING);
        PackedUserOperation memory op = _signPersonal(
            _op(
                predicted,
                _initCode(owner, SALT),
                _registerCallData(predicted, session, NOW - 1, NOW + 1 days, _mintPermissions(3))
            ),
            ownerKey
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);

        vm.expectEmit(true, true, true, true, predicted);
        emit SessionKeyAccount.AccountInitialized(entryPoint, owner);
        vm.expectEmit(true, true, true, true, address(factory));
        emit SessionKeyAccountFactory.AccountCreated(predicted, owner, SALT);
        vm.expectEmit(true, true, true, true, address(entryPoint));
        emit IEntryPoint.AccountDeployed(userOpHash, predicted, address(factory), address(0));
        vm.expectEmit(true, true, true, true, predicted);
        emit SessionKeyAccount.SessionKeyRegistered(
            session, NOW - 1, NOW + 1 days, 3, 0, 0, DEFAULT_GAS_BUDGET, 1
        );
        _handleOk(op, userOpHash);

        SessionKeyAccount account = SessionKeyAccount(payable(predicted));
        vm.assertTrue(account.getSessionKey(session).registered, "key registered in the first op");
        _sessionMint(account, sessionKey);
        vm.assertEq(_balance(account), 1, "the new key works");
    }

    function test_factory_createAccountIsIdempotent() public {
        SessionKeyAccount account = _deploy(SALT, "");

        vm.recordLogs();
        vm.prank(stranger);
        SessionKeyAccount again = factory.createAccount(owner, SALT);
        vm.assertEq(address(again), address(account), "same address");
        vm.assertEq(vm.getRecordedLogs().length, 0, "nothing deployed or initialized again");
        vm.assertEq(account.owner(), owner, "owner unchanged");

        // initCode for an account that already exists is refused by the EntryPoint.
        _handleExpectRevert(
            _signPersonal(_op(address(account), _initCode(owner, SALT), ""), ownerKey),
            abi.encodeWithSelector(
                IEntryPoint.FailedOp.selector, uint256(0), "AA10 sender already constructed"
            )
        );
    }

    function test_factory_createAccountBeforeFirstOpLeavesOpWithoutInitCode() public {
        // Anyone may deploy the account up front; the owner's first op then needs no initCode.
        SessionKeyAccount account = factory.createAccount(owner, SALT);
        vm.assertEq(address(account), factory.getAddress(owner, SALT), "predicted");
        vm.deal(address(account), ACCOUNT_FUNDING);
        _handleOk(_opBy(account, ownerKey, _mintCall(address(account))));
        vm.assertEq(_balance(account), 1, "minted");
    }

    function test_factory_initializeCannotBeCalledTwice() public {
        SessionKeyAccount account = _deploy(SALT, "");
        vm.prank(stranger);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(stranger);
        vm.prank(owner);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(owner);
        vm.assertEq(account.owner(), owner, "owner unchanged");
    }

    function test_factory_implementationCannotBeInitialized() public {
        // Through a real op first, so the implementation is checked in a live system.
        _deploy(SALT, "");
        SessionKeyAccount implementation = factory.accountImplementation();
        vm.prank(stranger);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        implementation.initialize(stranger);
        vm.assertEq(implementation.owner(), address(0), "implementation has no owner");
        // address(0) (a failed recovery) never counts as its owner.
        vm.assertEq(
            bytes32(implementation.isValidSignature(bytes32(0), new bytes(65))),
            bytes32(bytes4(0xffffffff)),
            "no signature is valid for the implementation"
        );
    }

    function test_factory_createAccountRejectsZeroOwner() public {
        vm.expectRevert(abi.encodeWithSelector(SessionKeyAccount.InvalidOwner.selector, address(0)));
        factory.createAccount(address(0), SALT);

        // As initCode, the failed deployment is reported by the EntryPoint.
        address predicted = factory.getAddress(address(0), SALT);
        vm.deal(predicted, ACCOUNT_FUNDING);
        _handleExpectRevert(
            _signPersonal(_op(predicted, _initCode(address(0), SALT), ""), ownerKey),
            abi.encodeWithSelector(
                IEntryPoint.FailedOp.selector, uint256(0), "AA13 initCode failed or OOG"
            )
        );
        vm.assertEq(predicted.code.length, 0, "nothing deployed");
    }

    function test_factory_addressesDifferPerOwnerAndSalt() public {
        SessionKeyAccount first = _deploy(1, "");
        SessionKeyAccount second = _deploy(2, "");
        vm.assertTrue(address(first) != address(second), "salt matters");
        vm.assertTrue(
            factory.getAddress(owner, 1) != factory.getAddress(stranger, 1), "owner matters"
        );
    }

    function testFuzz_factory_getAddressMatchesDeployment(uint256 ownerSeed, uint256 salt) public {
        uint256 key = _privateKey(ownerSeed);
        address accountOwner = vm.addr(key);
        address predicted = factory.getAddress(accountOwner, salt);
        SessionKeyAccount account = _deployFor(key, salt, _mintCall(predicted));
        vm.assertEq(address(account), predicted, "deployed at the predicted address");
        vm.assertEq(account.owner(), accountOwner, "owner set");
        vm.assertEq(_balance(account), 1, "first op executed after deployment");
    }

    function testFuzz_factory_createAccountIsIdempotent(
        uint256 ownerSeed,
        uint256 salt,
        address caller
    ) public {
        uint256 key = _privateKey(ownerSeed);
        address accountOwner = vm.addr(key);
        SessionKeyAccount account = _deployFor(key, salt, "");
        vm.prank(caller);
        SessionKeyAccount again = factory.createAccount(accountOwner, salt);
        vm.assertEq(address(again), address(account), "same account");
        vm.assertEq(account.owner(), accountOwner, "owner unchanged");
    }

    function testFuzz_factory_initializeCannotBeCalledTwice(address caller, address newOwner)
        public
    {
        SessionKeyAccount account = _deploy(SALT, "");
        vm.prank(caller);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(newOwner);
        vm.assertEq(account.owner(), owner, "owner unchanged");
    }
}
