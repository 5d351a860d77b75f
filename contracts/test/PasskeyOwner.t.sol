// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {SessionKeyAccountFactory} from "../src/SessionKeyAccountFactory.sol";
import {Signer, SignerKind} from "../src/Signers.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice An account owned by a passkey (a WebAuthn P-256 credential), end to end through the
/// EntryPoint, on the P-256 path the concrete suite picks. A passkey owner has no address: it
/// acts only through ops it signs (an assertion whose challenge is the userOpHash) and signs
/// ERC-1271 messages the same way, over the account's replay-safe digest.
abstract contract PasskeyOwnerTest is AccountTestBase {
    bytes4 internal constant MAGIC = 0x1626ba7e;
    bytes4 internal constant INVALID = 0xffffffff;
    uint256 internal constant PASSKEY = 0xFA55C0DE;
    uint256 internal constant SECOND_PASSKEY = 0xFA55C0DF;
    uint256 internal constant P256_SESSION_KEY = 0x9256;
    uint256 internal constant SALT = 5;

    Key internal passkey;
    Signer internal passkeySigner;
    address internal passkeyId;
    Key internal p256Session;

    function setUp() public virtual override {
        super.setUp();
        passkey = _webAuthnKey(PASSKEY);
        passkeySigner = _signerOf(passkey);
        passkeyId = _idOf(passkey);
        p256Session = _p256Key(P256_SESSION_KEY);
        vm.label(passkeyId, "passkeyId");
    }

    /// @dev Deploys the passkey's account (salt `SALT`) through its first op, carrying
    /// `callData`.
    function _deployPasskeyAccount(bytes memory callData)
        internal
        returns (SessionKeyAccount account)
    {
        return _deployFor(passkey, SALT, callData);
    }

    function _predicted() internal view returns (address) {
        return factory.getAddress(passkeySigner, SALT);
    }

    /// @dev An op by the passkey owner, which must succeed.
    function _passkeyOp(SessionKeyAccount account, bytes memory callData) internal {
        _handleOk(_opBy(account, passkey, callData));
    }

    // ---------------------------------------------------------------------------------------
    // Counterfactual address and deployment
    // ---------------------------------------------------------------------------------------

    /// @dev The CREATE2 salt covers the owner's kind: an Ethereum owner whose address equals
    /// the passkey's id gets another address, so it cannot take the passkey's account.
    function test_passkeyOwner_addressDiffersFromAnEthereumOwnerWithTheSameId() public {
        address predicted = _predicted();
        address ethTwin = factory.getAddress(_ethSigner(passkeyId), SALT);
        vm.assertNotEq(predicted, ethTwin, "kind is part of the salt");

        // Deploying the Ethereum twin leaves the passkey's address empty.
        SessionKeyAccount twin = factory.createAccount(_ethSigner(passkeyId), SALT);
        vm.assertEq(address(twin), ethTwin, "the twin at its own address");
        vm.assertTrue(twin.ownerKind() == SignerKind.Secp256k1, "an Ethereum owner");
        vm.assertEq(predicted.code.length, 0, "the passkey's account is untouched");

        SessionKeyAccount account = _deployPasskeyAccount("");
        vm.assertEq(address(account), predicted, "deployed at the predicted address");
        vm.assertEq(account.owner(), passkeyId, "owner id");
        vm.assertTrue(account.ownerKind() == SignerKind.WebAuthn, "a passkey owner");
        Signer memory stored = account.ownerSigner();
        vm.assertTrue(stored.kind == SignerKind.WebAuthn, "stored kind");
        vm.assertEq(stored.key, passkeySigner.key, "stored x || y");
        vm.assertEq(account.usesP256Precompile(), _p256PrecompileStandIn(), "P-256 path");
    }

    /// @dev The first op deploys the account through initCode, signed by the passkey, and
    /// registers a raw P-256 session key, which then mints.
    function test_passkeyOwner_firstOpDeploysAndRegistersAP256SessionKey() public {
        address predicted = _predicted();
        vm.deal(predicted, ACCOUNT_FUNDING);
        bytes32 registration = _newRegistration(_idOf(p256Session));
        PackedUserOperation memory op = _signAsOwner(
            _op(
                predicted,
                _initCode(passkeySigner, SALT),
                _registerCallData(
                    predicted,
                    registration,
                    _signerOf(p256Session),
                    NOW - 1,
                    NOW + 1 days,
                    _mintPermissions(5)
                )
            ),
            passkey
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);

        vm.expectEmit(true, true, true, true, predicted);
        emit SessionKeyAccount.AccountInitialized(entryPoint, passkeyId, SignerKind.WebAuthn);
        vm.expectEmit(true, true, true, true, address(factory));
        emit SessionKeyAccountFactory.AccountCreated(
            predicted, passkeyId, SignerKind.WebAuthn, SALT
        );
        vm.expectEmit(true, true, true, true, address(entryPoint));
        emit IEntryPoint.AccountDeployed(userOpHash, predicted, address(factory), address(0));
        vm.expectEmit(true, true, true, true, predicted);
        emit SessionKeyAccount.SessionKeyRegistered(
            registration,
            _idOf(p256Session),
            SignerKind.P256,
            NOW - 1,
            NOW + 1 days,
            5,
            0,
            0,
            DEFAULT_GAS_BUDGET,
            1
        );
        _handleOk(op, userOpHash);

        SessionKeyAccount account = SessionKeyAccount(payable(predicted));
        vm.assertTrue(account.getSessionKey(registration).registered, "registered");
        vm.assertTrue(account.getSessionKey(registration).kind == SignerKind.P256, "raw P-256");
        _sessionMint(account, p256Session);
        vm.assertEq(_balance(account), 1, "the P-256 key minted");
    }

    function testFuzz_passkeyOwner_anyPasskeyDeploysAndMints(uint256 seed, uint256 salt) public {
        Key memory fuzzed = _webAuthnKey(_p256PrivateKey(seed));
        address predicted = factory.getAddress(_signerOf(fuzzed), salt);
        SessionKeyAccount account = _deployFor(fuzzed, salt, _mintCall(predicted));
        vm.assertEq(address(account), predicted, "deployed at the predicted address");
        vm.assertEq(account.owner(), _idOf(fuzzed), "owner id");
        vm.assertEq(_balance(account), 1, "the first op minted");
    }

    // ---------------------------------------------------------------------------------------
    // Owner ops
    // ---------------------------------------------------------------------------------------

    function test_passkeyOwner_runsAdminOps() public {
        SessionKeyAccount account = _deployPasskeyAccount(_mintCall(_predicted()));
        _passkeyOp(account, _mintCall(address(account)));
        vm.assertEq(_balance(account), 2, "two owner mints");
        vm.assertEq(entryPoint.getNonce(address(account), 0), 2, "the owner's lane");

        // Register, use, revoke; register another kind, revoke all.
        _passkeyOp(
            account,
            _registerCallData(
                address(account), p256Session, NOW - 1, NOW + 1 days, _mintPermissions(5)
            )
        );
        bytes32 first = registrationOf[_idOf(p256Session)];
        _sessionMint(account, p256Session);
        _passkeyOp(account, _revokeCallData(address(account), first));
        _handleExpectRevert(_opBy(account, p256Session, _mintCall(address(account))), _aa24());

        Key memory webAuthnSession = _webAuthnKey(P256_SESSION_KEY);
        _passkeyOp(
            account,
            _registerCallData(
                address(account), webAuthnSession, NOW - 1, NOW + 1 days, _mintPermissions(5)
            )
        );
        _sessionMint(account, webAuthnSession);
        _passkeyOp(account, _revokeAllCallData(address(account)));
        vm.assertEq(account.sessionEpoch(), 1, "a new epoch");
        _handleExpectRevert(_opBy(account, webAuthnSession, _mintCall(address(account))), _aa24());
        vm.assertEq(_balance(account), 4, "two owner mints, two session mints");
    }

    /// @dev The passkey hands the account to another passkey, which hands it to an Ethereum
    /// key; each previous owner and every session key stops.
    function test_passkeyOwner_transfersOwnership() public {
        SessionKeyAccount account = _deployPasskeyAccount("");
        _passkeyOp(
            account,
            _registerCallData(
                address(account), p256Session, NOW - 1, NOW + 1 days, _mintPermissions(5)
            )
        );
        Key memory second = _webAuthnKey(SECOND_PASSKEY);
        _passkeyOp(account, _transferCallData(address(account), _signerOf(second)));
        vm.assertEq(account.owner(), _idOf(second), "the second passkey owns it");
        _handleExpectRevert(_opBy(account, passkey, _mintCall(address(account))), _aa24());
        _handleExpectRevert(_opBy(account, p256Session, _mintCall(address(account))), _aa24());

        _handleOk(_opBy(account, second, _transferCallData(address(account), _ethSigner(owner))));
        vm.assertEq(account.owner(), owner, "an Ethereum owner now");
        vm.assertTrue(account.ownerKind() == SignerKind.Secp256k1, "its kind");
        vm.assertEq(account.ownerSigner().key, abi.encodePacked(owner), "its key");
        _handleExpectRevert(_opBy(account, second, _mintCall(address(account))), _aa24());
        _ownerOp(account, _mintCall(address(account)));
        vm.assertEq(account.sessionEpoch(), 2, "each transfer a new epoch");
    }

    /// @dev A passkey cannot hand the account to a raw P-256 key.
    function test_passkeyOwner_cannotTransferToARawP256Key() public {
        SessionKeyAccount account = _deployPasskeyAccount("");
        Signer memory raw = _signerOf(_p256Key(SECOND_PASSKEY));
        _handleExpectExecutionRevert(
            _opBy(account, passkey, _transferCallData(address(account), raw)),
            abi.encodeWithSelector(SessionKeyAccount.InvalidOwner.selector, raw.kind, raw.key)
        );
        vm.assertEq(account.owner(), passkeyId, "owner unchanged");
    }

    function test_passkeyOwner_badAssertionsGetAA24() public {
        SessionKeyAccount account = _deployPasskeyAccount("");
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        uint256 at = _challengeIndex("webauthn.get");
        bytes[5] memory signatures = [
            // another passkey
            _webAuthn(SECOND_PASSKEY, userOpHash),
            // the wrong challenge
            _webAuthn(PASSKEY, ~userOpHash),
            // no user verification
            _webAuthn(
                PASSKEY,
                _authenticatorData(FLAG_UP),
                _clientDataJSON("webauthn.get", userOpHash),
                at
            ),
            // a raw P-256 signature by the passkey's private key
            _keySignature(_p256Key(PASSKEY), userOpHash),
            // an Ethereum signature by the same private key
            _sig(PASSKEY, userOpHash)
        ];
        for (uint256 i = 0; i < signatures.length; i++) {
            op.signature = _ownerFrame(signatures[i]);
            _handleExpectRevert(op, _aa24());
        }
        op.signature = _ownerFrame(_webAuthn(PASSKEY, userOpHash));
        _handleOk(op);
    }

    /// @dev A passkey owner has no address: calls from its id are strangers' calls.
    function test_passkeyOwner_directCallsAreRefused() public {
        SessionKeyAccount account = _deployPasskeyAccount("");
        SessionKeyAccount.SessionPermissions memory permissions = _mintPermissions(1);
        Signer memory key = _signerOf(p256Session);
        bytes memory err =
            abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, passkeyId);
        vm.startPrank(passkeyId, passkeyId);
        vm.expectRevert(err);
        account.registerSessionKey(keccak256("direct"), key, NOW - 1, NOW + 1 days, permissions);
        vm.expectRevert(err);
        account.revokeAllSessionKeys();
        vm.expectRevert(err);
        account.transferOwnership(_ethSigner(stranger));
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.NotEntryPointOrOwner.selector, passkeyId)
        );
        account.execute(address(items), 0, _mintData(address(account), 1));
        vm.stopPrank();
        vm.assertEq(account.sessionEpoch(), 0, "nothing revoked");
        vm.assertEq(_balance(account), 0, "nothing minted");
    }

    function testFuzz_passkeyOwner_directCallsAreRefused(address caller) public {
        SessionKeyAccount account = _deployPasskeyAccount("");
        vm.assume(caller != address(account) && caller != address(entryPoint));
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(SessionKeyAccount.NotOwnerOrSelf.selector, caller));
        account.revokeAllSessionKeys();
        vm.prank(caller);
        vm.expectRevert(
            abi.encodeWithSelector(SessionKeyAccount.NotEntryPointOrOwner.selector, caller)
        );
        account.execute(recipient, 0, "");
    }

    // ---------------------------------------------------------------------------------------
    // ERC-1271
    // ---------------------------------------------------------------------------------------

    function test_passkeyOwner_erc1271() public {
        SessionKeyAccount account = _deployPasskeyAccount(
            _registerCallData(_predicted(), p256Session, NOW - 1, NOW + 1 days, _mintPermissions(5))
        );
        bytes32 hash = keccak256("log in with a passkey");
        bytes32 digest = account.replaySafeHash(hash);
        vm.assertEq(digest, _replaySafeHash(address(account), hash), "documented digest");

        vm.assertEq(
            bytes32(account.isValidSignature(hash, _webAuthn(PASSKEY, digest))),
            bytes32(MAGIC),
            "the passkey's assertion over the digest"
        );
        bytes[4] memory refused = [
            // over the bare hash
            _webAuthn(PASSKEY, hash),
            // by the registered P-256 session key, raw or as an assertion
            _keySignature(p256Session, digest),
            _webAuthn(P256_SESSION_KEY, digest),
            // over the digest of another account of the same passkey
            _webAuthn(PASSKEY, _replaySafeHash(factory.getAddress(passkeySigner, SALT + 1), hash))
        ];
        for (uint256 i = 0; i < refused.length; i++) {
            vm.assertEq(
                bytes32(account.isValidSignature(hash, refused[i])), bytes32(INVALID), "refused"
            );
        }
    }

    function testFuzz_passkeyOwner_erc1271(bytes32 hash) public {
        SessionKeyAccount account = _deployPasskeyAccount("");
        bytes32 digest = account.replaySafeHash(hash);
        vm.assertEq(
            bytes32(account.isValidSignature(hash, _webAuthn(PASSKEY, digest))),
            bytes32(MAGIC),
            "accepted"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(hash, _webAuthn(PASSKEY, hash))),
            bytes32(INVALID),
            "bare hash refused"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(hash, _webAuthn(SECOND_PASSKEY, digest))),
            bytes32(INVALID),
            "another passkey refused"
        );
    }
}

contract PasskeyOwnerSolidityTest is PasskeyOwnerTest {}

contract PasskeyOwnerPrecompileTest is PasskeyOwnerTest {
    function _p256PrecompileStandIn() internal pure override returns (bool) {
        return true;
    }
}
