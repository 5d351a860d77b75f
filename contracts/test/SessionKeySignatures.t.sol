// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {SignerKind} from "../src/Signers.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Rule 9: ERC-1271 accepts only the owner's signature over `replaySafeHash(hash)`, the
/// EIP-712 digest of `SessionKeyAccountMessage(hash)` under the account's own domain. The bare
/// hash is never accepted (a signature made for one account would replay on every other
/// account of the same owner), and a session key can never sign on the account's behalf.
contract SessionKeyErc1271Test is AccountTestBase {
    bytes4 internal constant MAGIC = 0x1626ba7e;
    bytes4 internal constant INVALID = 0xffffffff;
    bytes32 internal constant HASH = keccak256("sign in to the latchkey arena");

    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(_mintPermissions(10));
        // The key is registered and active: it can mint.
        _sessionMint(account, sessionKey);
    }

    function _check(bytes32 hash, bytes memory signature) internal view returns (bytes32) {
        return bytes32(account.isValidSignature(hash, signature));
    }

    function test_erc1271_ownerSignatureOverReplaySafeHashIsValid() public view {
        bytes32 digest = account.replaySafeHash(HASH);
        vm.assertEq(_check(HASH, _sig(ownerKey, digest)), bytes32(MAGIC), "owner accepted");
    }

    /// @dev The digest is an interface with wallets and the relayer: pin its layout and the
    /// domain the account reports (ERC-5267).
    function test_erc1271_replaySafeHashIsTheDocumentedEip712Digest() public view {
        vm.assertEq(
            account.replaySafeHash(HASH),
            _replaySafeHash(address(account), HASH),
            "EIP-712 digest of SessionKeyAccountMessage(hash)"
        );
        vm.assertEq(
            account.ACCOUNT_MESSAGE_TYPEHASH(),
            keccak256("SessionKeyAccountMessage(bytes32 hash)"),
            "type hash"
        );
        (
            ,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,,
        ) = account.eip712Domain();
        vm.assertEq(keccak256(bytes(name)), keccak256("SessionKeyAccount"), "domain name");
        vm.assertEq(keccak256(bytes(version)), keccak256("2"), "domain version");
        vm.assertEq(chainId, block.chainid, "domain chain");
        vm.assertEq(verifyingContract, address(account), "the clone, not the implementation");
    }

    /// @dev The v1 form, the owner's raw signature of the bare hash, no longer verifies.
    function test_erc1271_ownerBareHashSignatureIsRefused() public view {
        vm.assertEq(_check(HASH, _sig(ownerKey, HASH)), bytes32(INVALID), "bare hash refused");
    }

    function test_erc1271_ownerPersonalSignatureIsNotAccepted() public view {
        vm.assertEq(
            _check(HASH, _sig(ownerKey, _personalDigest(HASH))),
            bytes32(INVALID),
            "personal form of the hash"
        );
        vm.assertEq(
            _check(HASH, _sig(ownerKey, _personalDigest(account.replaySafeHash(HASH)))),
            bytes32(INVALID),
            "personal form of the digest"
        );
    }

    function test_erc1271_ownerFramedSignatureIsNotAccepted() public view {
        vm.assertEq(
            _check(HASH, _ownerFrame(_sig(ownerKey, account.replaySafeHash(HASH)))),
            bytes32(INVALID),
            "ERC-1271 takes the bare signature, not a user-op frame"
        );
    }

    function test_erc1271_activeSessionKeyCannotSignForTheAccount() public view {
        vm.assertTrue(_isRegistered(account, session), "key active");
        bytes32 digest = account.replaySafeHash(HASH);
        bytes32 registration = registrationOf[session];
        bytes[5] memory signatures = [
            _sig(sessionKey, digest),
            _sig(sessionKey, HASH),
            _sig(sessionKey, _personalDigest(HASH)),
            _sessionFrame(registration, _opDeadline(), _sig(sessionKey, digest)),
            _sessionFrame(
                registration,
                _opDeadline(),
                _sig(sessionKey, _sessionOperationHash(digest, registration, _opDeadline()))
            )
        ];
        for (uint256 i = 0; i < signatures.length; i++) {
            vm.assertEq(_check(HASH, signatures[i]), bytes32(INVALID), "session key refused");
        }
    }

    function test_erc1271_strangerAndMalformedSignaturesAreInvalid() public view {
        vm.assertEq(
            _check(HASH, _sig(strangerKey, account.replaySafeHash(HASH))),
            bytes32(INVALID),
            "stranger refused"
        );
        vm.assertEq(_check(HASH, ""), bytes32(INVALID), "empty signature");
        vm.assertEq(_check(HASH, new bytes(65)), bytes32(INVALID), "zero signature");
        vm.assertEq(_check(HASH, hex"deadbeef"), bytes32(INVALID), "short signature");
    }

    function test_erc1271_rotatedOwnerSignatureIsInvalid() public {
        _ownerOp(account, _transferCallData(address(account), _ethSigner(stranger)));
        bytes32 digest = account.replaySafeHash(HASH);
        vm.assertEq(_check(HASH, _sig(ownerKey, digest)), bytes32(INVALID), "old owner refused");
        vm.assertEq(_check(HASH, _sig(strangerKey, digest)), bytes32(MAGIC), "new owner accepted");
    }

    function testFuzz_erc1271_onlyTheOwnerSigns(bytes32 hash, uint256 keySeed) public {
        uint256 key = _privateKey(keySeed);
        vm.assume(key != ownerKey);
        address keyAddress = vm.addr(key);
        if (!_isRegistered(account, keyAddress)) {
            _registerByOp(account, keyAddress, NOW - 1, NOW + 1 days, _mintPermissions(1));
        }
        bytes32 digest = account.replaySafeHash(hash);

        vm.assertEq(_check(hash, _sig(ownerKey, digest)), bytes32(MAGIC), "owner accepted");
        vm.assertEq(_check(hash, _sig(ownerKey, hash)), bytes32(INVALID), "owner bare refused");
        vm.assertEq(_check(hash, _sig(key, digest)), bytes32(INVALID), "session key refused");
        vm.assertEq(_check(hash, _sig(key, hash)), bytes32(INVALID), "session key bare refused");
        vm.assertEq(
            _check(hash, _sig(key, _personalDigest(hash))),
            bytes32(INVALID),
            "session key personal refused"
        );
        vm.assertEq(
            _check(hash, _sig(ownerKey, _personalDigest(hash))),
            bytes32(INVALID),
            "owner personal form refused"
        );
    }
}

/// @notice Rule 11: user operations carry a framed signature. The owner (`0x00 ‖ sig`) signs the
/// raw EIP-712 userOpHash or its EIP-191 personal-sign form; a secp256k1 session key
/// (`0x01 ‖ registration ‖ validUntil ‖ sig`) signs `sessionOperationHash` raw, and nothing
/// else. Anything else is a signature error (AA24), never a revert.
contract SessionKeyUserOpSignatureTest is AccountTestBase {
    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(_mintPermissions(10));
    }

    function _mintOp() internal view returns (PackedUserOperation memory) {
        return _op(address(account), "", _mintCall(address(account)));
    }

    /// @dev A mint in the session key's lane, not signed yet.
    function _sessionMintOp() internal view returns (PackedUserOperation memory op) {
        op = _mintOp();
        op.nonce = entryPoint.getNonce(address(account), _lane(session, 0));
    }

    function test_owner_rawSignatureRunsOp() public {
        _handleOk(_signRaw(_mintOp(), ownerKey));
        vm.assertEq(_balance(account), 1, "owner minted");
    }

    function test_owner_personalSignatureRunsOp() public {
        _handleOk(_signPersonal(_mintOp(), ownerKey));
        vm.assertEq(_balance(account), 1, "owner minted");
    }

    function test_sessionKey_signatureOverSessionOperationHashRunsOp() public {
        _handleOk(
            _signSession(_sessionMintOp(), sessionKey, registrationOf[session], _opDeadline())
        );
        vm.assertEq(_balance(account), 1, "session key minted");
        vm.assertEq(_callsUsed(account, session), 1, "call counted");
    }

    /// @dev What a session key signs is an interface with the relayer: pin it.
    function test_sessionKey_sessionOperationHashIsTheDocumentedStructHash() public view {
        bytes32 userOpHash = keccak256("a user op");
        bytes32 registration = keccak256("a registration");
        vm.assertEq(
            account.sessionOperationHash(userOpHash, registration, NOW + 60),
            _sessionOperationHash(userOpHash, registration, NOW + 60),
            "keccak256(abi.encode(typehash, userOpHash, registration, validUntil))"
        );
        vm.assertEq(
            account.SESSION_OPERATION_TYPEHASH(), SESSION_OPERATION_TYPEHASH, "type hash pinned"
        );
    }

    /// @dev A session key's EIP-191 form, or its signature of the bare userOpHash, is refused.
    function test_sessionKey_otherFormsRefused() public {
        PackedUserOperation memory op = _sessionMintOp();
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        bytes32 registration = registrationOf[session];
        uint48 deadline = _opDeadline();
        bytes32 message = _sessionOperationHash(userOpHash, registration, deadline);
        bytes[4] memory signatures = [
            _sessionFrame(registration, deadline, _sig(sessionKey, _personalDigest(message))),
            _sessionFrame(registration, deadline, _sig(sessionKey, userOpHash)),
            _sessionFrame(registration, deadline, _sig(sessionKey, _personalDigest(userOpHash))),
            // The key's valid signature, presented as the owner's.
            _ownerFrame(_sig(sessionKey, message))
        ];
        for (uint256 i = 0; i < signatures.length; i++) {
            op.signature = signatures[i];
            _handleExpectRevert(op, _aa24());
        }
        vm.assertEq(_callsUsed(account, session), 0, "nothing counted");
    }

    /// @dev The registration and the deadline of the frame are signed: changing either breaks
    /// the signature.
    function test_sessionKey_frameFieldsAreSigned() public {
        bytes32 registration = registrationOf[session];
        uint48 deadline = _opDeadline();
        PackedUserOperation memory op =
            _signSession(_sessionMintOp(), sessionKey, registration, deadline);
        bytes memory keySignature = _sig(
            sessionKey, _sessionOperationHash(entryPoint.getUserOpHash(op), registration, deadline)
        );

        op.signature = _sessionFrame(registration, deadline + 1, keySignature);
        _handleExpectRevert(op, _aa24());
        bytes32 other = _registerByOp(account, session, NOW - 1, NOW + 1 days, _mintPermissions(1));
        op.signature = _sessionFrame(other, deadline, keySignature);
        _handleExpectRevert(op, _aa24());

        op.signature = _sessionFrame(registration, deadline, keySignature);
        _handleOk(op);
    }

    /// @dev The owner is not bound by session rules: it may call the account's admin functions
    /// through an op, with either signature form.
    function test_owner_rawSignatureRunsAdminOp() public {
        _handleOk(
            _signRaw(
                _op(
                    address(account),
                    "",
                    _registerCallData(
                        address(account), secondSession, NOW - 1, NOW + 1 days, _mintPermissions(1)
                    )
                ),
                ownerKey
            )
        );
        vm.assertTrue(_isRegistered(account, secondSession), "registered");
    }

    function test_signature_strangerRefused() public {
        _handleExpectRevert(_signPersonal(_mintOp(), strangerKey), _aa24());
        _handleExpectRevert(_signRaw(_mintOp(), strangerKey), _aa24());
        // A stranger claiming the session key's registration.
        _handleExpectRevert(
            _signSession(_sessionMintOp(), strangerKey, registrationOf[session], _opDeadline()),
            _aa24()
        );
    }

    function test_signature_overAnotherOpRefused() public {
        PackedUserOperation memory signed = _signPersonal(_mintOp(), ownerKey);
        PackedUserOperation memory op =
            _op(address(account), "", _execute(address(items), 0, _mintData(stranger, 1)));
        op.signature = signed.signature;
        _handleExpectRevert(op, _aa24());
    }

    function test_signature_malformedRefused() public {
        bytes32 registration = registrationOf[session];
        bytes memory ownerSignature = _sig(ownerKey, entryPoint.getUserOpHash(_mintOp()));
        bytes[9] memory signatures = [
            bytes(""),
            hex"00",
            hex"01",
            new bytes(66),
            hex"00deadbeef",
            // a frame too short to hold registration and deadline
            abi.encodePacked(uint8(1), registration, uint40(0)),
            // an unknown signer byte before a valid owner signature
            abi.encodePacked(uint8(2), ownerSignature),
            // the owner's valid signature unframed, as v1 sent it
            ownerSignature,
            // the owner's valid signature in a session frame
            _sessionFrame(registration, _opDeadline(), ownerSignature)
        ];
        for (uint256 i = 0; i < signatures.length; i++) {
            PackedUserOperation memory op = _mintOp();
            op.signature = signatures[i];
            _handleExpectRevert(op, _aa24());
        }
    }

    /// @dev A malleated (high-s) copy of a valid secp256k1 signature is refused, the owner's
    /// and a session key's alike.
    function test_signature_highSRefused() public {
        PackedUserOperation memory op = _mintOp();
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(ownerKey, _personalDigest(entryPoint.getUserOpHash(op)));
        op.signature =
            _ownerFrame(abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? 28 : 27));
        _handleExpectRevert(op, _aa24());

        op = _sessionMintOp();
        bytes32 registration = registrationOf[session];
        uint48 deadline = _opDeadline();
        (v, r, s) = vm.sign(
            sessionKey, _sessionOperationHash(entryPoint.getUserOpHash(op), registration, deadline)
        );
        op.signature = _sessionFrame(
            registration,
            deadline,
            abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? 28 : 27)
        );
        _handleExpectRevert(op, _aa24());
    }

    function testFuzz_signature_ownerFormsAndSessionKeyForm(uint256 keySeed, bool raw, bool asOwner)
        public
    {
        if (asOwner) {
            _handleOk(raw ? _signRaw(_mintOp(), ownerKey) : _signPersonal(_mintOp(), ownerKey));
        } else {
            uint256 key = _privateKey(keySeed);
            vm.assume(key != ownerKey && key != sessionKey);
            address keyAddress = vm.addr(key);
            bytes32 registration =
                _registerByOp(account, keyAddress, NOW - 1, NOW + 1 days, _mintPermissions(1));
            PackedUserOperation memory op = _mintOp();
            op.nonce = entryPoint.getNonce(address(account), _lane(keyAddress, 0));
            uint48 deadline = _opDeadline();
            bytes32 message =
                _sessionOperationHash(entryPoint.getUserOpHash(op), registration, deadline);
            // Only the raw form is a session key's.
            op.signature =
                _sessionFrame(registration, deadline, _sig(key, _personalDigest(message)));
            _handleExpectRevert(op, _aa24());
            op.signature = _sessionFrame(registration, deadline, _sig(key, message));
            _handleOk(op);
        }
        vm.assertEq(_balance(account), 1, "minted");
    }

    function testFuzz_signature_unknownSignerRefused(uint256 keySeed, bool raw) public {
        uint256 key = _privateKey(keySeed);
        vm.assume(key != ownerKey && key != sessionKey);
        _handleExpectRevert(raw ? _signRaw(_mintOp(), key) : _signPersonal(_mintOp(), key), _aa24());
        _handleExpectRevert(
            _signSession(_sessionMintOp(), key, registrationOf[session], _opDeadline()), _aa24()
        );
    }

    /// @dev Arbitrary signature bytes are a signature error, never a revert of validation.
    function testFuzz_signature_randomBytesGetAA24(bytes memory signature, uint8 signerByte)
        public
    {
        if (signature.length != 0) signature[0] = bytes1(signerByte % 3);
        PackedUserOperation memory op = _mintOp();
        op.signature = signature;
        _handleExpectRevert(op, _aa24());
    }
}

/// @notice Rule 12: the account reports registrations, revocations and session-key use, by
/// registration id, with the key's id and kind.
contract SessionKeyEventsTest is AccountTestBase {
    uint256 internal constant PRICE = 0.001 ether;

    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(
            _permissions(
                10,
                uint128(3 * PRICE),
                uint128(10 * PRICE),
                _list(
                    _allow(address(items), GameItems.mint.selector),
                    _allow(address(items), GameItems.buy.selector)
                )
            )
        );
    }

    function test_events_sessionKeyRegistered() public {
        SessionKeyAccount.SessionPermissions memory permissions = _permissions(
            4,
            1 ether,
            2 ether,
            _list(_allow(address(items), GameItems.mint.selector), _allowAny(address(otherItems)))
        );
        PackedUserOperation memory op = _opBy(
            account,
            ownerKey,
            _registerCallData(address(account), secondSession, NOW + 5, NOW + 500, permissions)
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);

        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyRegistered(
            registrationOf[secondSession],
            secondSession,
            SignerKind.Secp256k1,
            NOW + 5,
            NOW + 500,
            4,
            1 ether,
            2 ether,
            DEFAULT_GAS_BUDGET,
            2
        );
        _handleOk(op, userOpHash);
    }

    function test_events_sessionKeyUsed() public {
        PackedUserOperation memory op = _opBy(account, sessionKey, _mintCall(address(account)));
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyUsed(registrationOf[session], 1, 0, OP_MAX_GAS_COST);
        _handleOk(op, userOpHash);

        BaseAccount.Call[] memory calls = new BaseAccount.Call[](2);
        calls[0] = _call(address(items), 2 * PRICE, _buyData(2));
        calls[1] = _call(address(items), 0, _mintData(address(account), 1));
        op = _opBy(account, sessionKey, _executeBatch(calls));
        userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyUsed(
            registrationOf[session], 3, uint128(2 * PRICE), 2 * OP_MAX_GAS_COST
        );
        _handleOk(op, userOpHash);
    }

    function test_events_sessionKeyRevoked() public {
        PackedUserOperation memory op = _opBy(
            account,
            ownerKey,
            _execute(
                address(account),
                0,
                abi.encodeCall(account.revokeSessionKey, (registrationOf[session]))
            )
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyRevoked(registrationOf[session], session);
        _handleOk(op, userOpHash);
    }

    function test_events_allSessionKeysRevoked() public {
        PackedUserOperation memory op = _opBy(
            account,
            ownerKey,
            _execute(address(account), 0, abi.encodeCall(account.revokeAllSessionKeys, ()))
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.AllSessionKeysRevoked(1);
        _handleOk(op, userOpHash);
    }

    function test_events_ownerRotationRevokesAllKeys() public {
        PackedUserOperation memory op = _opBy(
            account,
            ownerKey,
            _execute(
                address(account),
                0,
                abi.encodeCall(account.transferOwnership, (_ethSigner(stranger)))
            )
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.OwnershipTransferred(owner, stranger, SignerKind.Secp256k1);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.AllSessionKeysRevoked(1);
        _handleOk(op, userOpHash);
    }

    function testFuzz_events_sessionKeyUsedReportsRunningTotals(uint256 seed, uint256 rounds)
        public
    {
        rounds = bound(rounds, 1, 4);
        uint256 calls;
        uint256 spent;
        for (uint256 i = 0; i < rounds; i++) {
            uint256 amount = bound(uint256(keccak256(abi.encode(seed, i))), 0, 2);
            PackedUserOperation memory op = _opBy(
                account, sessionKey, _execute(address(items), amount * PRICE, _buyData(amount))
            );
            bytes32 userOpHash = entryPoint.getUserOpHash(op);
            calls += 1;
            spent += amount * PRICE;
            vm.expectEmit(true, true, true, true, address(account));
            emit SessionKeyAccount.SessionKeyUsed(
                registrationOf[session],
                uint32(calls),
                uint128(spent),
                uint128(calls * OP_MAX_GAS_COST)
            );
            _handleOk(op, userOpHash);
        }
        vm.assertEq(_sessionOf(account, session).valueSpent, spent, "stored total");
    }

    function testFuzz_events_sessionKeyRegistered(
        uint48 validAfter,
        uint48 length,
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget
    ) public {
        validAfter = uint48(bound(validAfter, 0, type(uint48).max - 1));
        length = uint48(bound(length, 1, type(uint48).max - validAfter));
        uint48 validUntil = validAfter + length;
        SessionKeyAccount.SessionPermissions memory permissions = _permissions(
            callLimit, valuePerCallLimit, valueBudget, _list(_allowAny(address(otherItems)))
        );
        PackedUserOperation memory op = _opBy(
            account,
            ownerKey,
            _registerCallData(address(account), secondSession, validAfter, validUntil, permissions)
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyRegistered(
            registrationOf[secondSession],
            secondSession,
            SignerKind.Secp256k1,
            validAfter,
            validUntil,
            callLimit,
            valuePerCallLimit,
            valueBudget,
            DEFAULT_GAS_BUDGET,
            1
        );
        _handleOk(op, userOpHash);

        SessionKeyAccount.SessionKey memory state = _sessionOf(account, secondSession);
        vm.assertEq(state.validAfter, validAfter, "validAfter stored");
        vm.assertEq(state.validUntil, validUntil, "validUntil stored");
        vm.assertEq(state.callLimit, callLimit, "callLimit stored");
        vm.assertEq(state.valuePerCallLimit, valuePerCallLimit, "per-call limit stored");
        vm.assertEq(state.valueBudget, valueBudget, "budget stored");
    }
}
