// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {SessionKeyAccountFactory} from "../src/SessionKeyAccountFactory.sol";
import {Signer, SignerKind} from "../src/Signers.sol";
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
        address predicted = factory.getAddress(_ethSigner(owner), SALT);
        vm.assertEq(predicted.code.length, 0, "not deployed yet");

        SessionKeyAccount account = _deploy(SALT, "");
        vm.assertEq(address(account), predicted, "deployed at the predicted address");
        vm.assertGt(predicted.code.length, 0, "deployed");
        vm.assertEq(account.owner(), owner, "owner set");
        vm.assertTrue(account.ownerKind() == SignerKind.Secp256k1, "Ethereum owner");
        vm.assertEq(
            account.ownerSigner().key, abi.encodePacked(owner), "owner key is its 20-byte address"
        );
        vm.assertEq(address(account.entryPoint()), address(entryPoint), "EntryPoint set");
        vm.assertEq(
            factory.getAddress(_ethSigner(owner), SALT), predicted, "prediction stable after deploy"
        );
    }

    function test_factory_accountDeploysInItsFirstOp() public {
        address predicted = factory.getAddress(_ethSigner(owner), SALT);
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
        emit SessionKeyAccount.AccountInitialized(entryPoint, owner, SignerKind.Secp256k1);
        vm.expectEmit(true, true, true, true, address(factory));
        emit SessionKeyAccountFactory.AccountCreated(predicted, owner, SignerKind.Secp256k1, SALT);
        vm.expectEmit(true, true, true, true, address(entryPoint));
        emit IEntryPoint.AccountDeployed(userOpHash, predicted, address(factory), address(0));
        vm.expectEmit(true, true, true, true, predicted);
        emit SessionKeyAccount.SessionKeyRegistered(
            registrationOf[session],
            session,
            SignerKind.Secp256k1,
            NOW - 1,
            NOW + 1 days,
            3,
            0,
            0,
            DEFAULT_GAS_BUDGET,
            1
        );
        _handleOk(op, userOpHash);

        SessionKeyAccount account = SessionKeyAccount(payable(predicted));
        vm.assertTrue(_sessionOf(account, session).registered, "key registered in the first op");
        _sessionMint(account, sessionKey);
        vm.assertEq(_balance(account), 1, "the new key works");
    }

    function test_factory_createAccountIsIdempotent() public {
        SessionKeyAccount account = _deploy(SALT, "");

        vm.recordLogs();
        vm.prank(stranger);
        SessionKeyAccount again = factory.createAccount(_ethSigner(owner), SALT);
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
        SessionKeyAccount account = factory.createAccount(_ethSigner(owner), SALT);
        vm.assertEq(address(account), factory.getAddress(_ethSigner(owner), SALT), "predicted");
        vm.deal(address(account), ACCOUNT_FUNDING);
        _handleOk(_opBy(account, ownerKey, _mintCall(address(account))));
        vm.assertEq(_balance(account), 1, "minted");
    }

    function test_factory_initializeCannotBeCalledTwice() public {
        SessionKeyAccount account = _deploy(SALT, "");
        vm.prank(stranger);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(_ethSigner(stranger));
        vm.prank(owner);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(_ethSigner(owner));
        vm.assertEq(account.owner(), owner, "owner unchanged");
    }

    function test_factory_implementationCannotBeInitialized() public {
        // Through a real op first, so the implementation is checked in a live system.
        _deploy(SALT, "");
        SessionKeyAccount implementation = factory.accountImplementation();
        vm.prank(stranger);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        implementation.initialize(_ethSigner(stranger));
        vm.assertEq(implementation.owner(), address(0), "implementation has no owner");
        // address(0) (a failed recovery) never counts as its owner.
        vm.assertEq(
            bytes32(implementation.isValidSignature(bytes32(0), new bytes(65))),
            bytes32(bytes4(0xffffffff)),
            "no signature is valid for the implementation"
        );
    }

    function test_factory_createAccountRejectsZeroOwner() public {
        Signer memory zero = _ethSigner(address(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                SessionKeyAccount.InvalidOwner.selector, SignerKind.Secp256k1, zero.key
            )
        );
        factory.createAccount(zero, SALT);

        // As initCode, the failed deployment is reported by the EntryPoint.
        address predicted = factory.getAddress(zero, SALT);
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
            factory.getAddress(_ethSigner(owner), 1) != factory.getAddress(_ethSigner(stranger), 1),
            "owner matters"
        );
    }

    /// @dev An owner must be a well-formed Ethereum address or WebAuthn point; a raw P-256 key
    /// cannot own an account.
    function test_factory_createAccountRejectsMalformedOwners() public {
        (uint256 x, uint256 y) = vm.publicKeyP256(0xC0FFEE);
        Signer[5] memory owners = [
            Signer({kind: SignerKind.P256, key: abi.encodePacked(x, y)}),
            Signer({kind: SignerKind.WebAuthn, key: abi.encodePacked(x, y + 1)}),
            Signer({kind: SignerKind.WebAuthn, key: abi.encodePacked(x, y, uint8(0))}),
            Signer({kind: SignerKind.Secp256k1, key: abi.encodePacked(owner, uint8(0))}),
            Signer({kind: SignerKind.Secp256k1, key: abi.encode(owner)})
        ];
        for (uint256 i = 0; i < owners.length; i++) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    SessionKeyAccount.InvalidOwner.selector, owners[i].kind, owners[i].key
                )
            );
            factory.createAccount(owners[i], SALT);
            vm.assertEq(factory.getAddress(owners[i], SALT).code.length, 0, "nothing deployed");
        }
    }

    function testFuzz_factory_getAddressMatchesDeployment(uint256 ownerSeed, uint256 salt) public {
        uint256 key = _privateKey(ownerSeed);
        address accountOwner = vm.addr(key);
        address predicted = factory.getAddress(_ethSigner(accountOwner), salt);
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
        SessionKeyAccount again = factory.createAccount(_ethSigner(accountOwner), salt);
        vm.assertEq(address(again), address(account), "same account");
        vm.assertEq(account.owner(), accountOwner, "owner unchanged");
    }

    function testFuzz_factory_initializeCannotBeCalledTwice(
        address caller,
        address newOwner,
        uint256 passkeySeed,
        bool passkey
    ) public {
        SessionKeyAccount account = _deploy(SALT, "");
        Signer memory newSigner =
            passkey ? _signerOf(_webAuthnKey(_p256PrivateKey(passkeySeed))) : _ethSigner(newOwner);
        vm.prank(caller);
        vm.expectRevert(Initializable.InvalidInitialization.selector);
        account.initialize(newSigner);
        vm.assertEq(account.owner(), owner, "owner unchanged");
    }
}
