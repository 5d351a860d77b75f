// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../src/GameItems.sol";
import {SessionKeyAccount} from "../src/SessionKeyAccount.sol";
import {AccountTestBase} from "./utils/AccountTestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @notice Rule 9: ERC-1271 accepts only the owner's raw signature over the hash; a session key
/// can never sign on the account's behalf.
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

    function test_erc1271_ownerRawSignatureIsValid() public view {
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(ownerKey, HASH))),
            bytes32(MAGIC),
            "owner signature accepted"
        );
    }

    function test_erc1271_ownerPersonalSignatureIsNotAccepted() public view {
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(ownerKey, _personalDigest(HASH)))),
            bytes32(INVALID),
            "only the raw form is ERC-1271"
        );
    }

    function test_erc1271_activeSessionKeyCannotSignForTheAccount() public view {
        vm.assertTrue(account.getSessionKey(session).registered, "key active");
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(sessionKey, HASH))),
            bytes32(INVALID),
            "session key raw signature refused"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(sessionKey, _personalDigest(HASH)))),
            bytes32(INVALID),
            "session key personal signature refused"
        );
    }

    function test_erc1271_strangerAndMalformedSignaturesAreInvalid() public view {
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(strangerKey, HASH))),
            bytes32(INVALID),
            "stranger refused"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, "")), bytes32(INVALID), "empty signature"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, new bytes(65))),
            bytes32(INVALID),
            "zero signature"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, hex"deadbeef")),
            bytes32(INVALID),
            "short signature"
        );
    }

    function test_erc1271_rotatedOwnerSignatureIsInvalid() public {
        _ownerOp(
            account,
            _execute(address(account), 0, abi.encodeCall(account.transferOwnership, (stranger)))
        );
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(ownerKey, HASH))),
            bytes32(INVALID),
            "old owner refused"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(HASH, _sig(strangerKey, HASH))),
            bytes32(MAGIC),
            "new owner accepted"
        );
    }

    function testFuzz_erc1271_onlyTheOwnerSigns(bytes32 hash, uint256 keySeed) public {
        uint256 key = _privateKey(keySeed);
        vm.assume(key != ownerKey);
        address keyAddress = vm.addr(key);
        if (!account.getSessionKey(keyAddress).registered) {
            _registerByOp(account, keyAddress, NOW - 1, NOW + 1 days, _mintPermissions(1));
        }

        vm.assertEq(
            bytes32(account.isValidSignature(hash, _sig(ownerKey, hash))),
            bytes32(MAGIC),
            "owner accepted"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(hash, _sig(key, hash))),
            bytes32(INVALID),
            "session key raw refused"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(hash, _sig(key, _personalDigest(hash)))),
            bytes32(INVALID),
            "session key personal refused"
        );
        vm.assertEq(
            bytes32(account.isValidSignature(hash, _sig(ownerKey, _personalDigest(hash)))),
            bytes32(INVALID),
            "owner personal form refused"
        );
    }
}

/// @notice Rule 11: user operations accept the personal-sign form and the raw EIP-712 userOpHash
/// form, for the owner and for session keys alike; anything else is a signature error (AA24).
contract SessionKeyUserOpSignatureTest is AccountTestBase {
    SessionKeyAccount internal account;

    function setUp() public override {
        super.setUp();
        account = _deployWithSession(_mintPermissions(10));
    }

    function test_owner_rawSignatureRunsOp() public {
        _handleOk(_signRaw(_op(address(account), "", _mintCall(address(account))), ownerKey));
        vm.assertEq(_balance(account), 1, "owner minted");
    }

    function test_owner_personalSignatureRunsOp() public {
        _handleOk(_signPersonal(_op(address(account), "", _mintCall(address(account))), ownerKey));
        vm.assertEq(_balance(account), 1, "owner minted");
    }

    function test_sessionKey_rawSignatureRunsOp() public {
        _handleOk(_signRaw(_op(address(account), "", _mintCall(address(account))), sessionKey));
        vm.assertEq(_balance(account), 1, "session key minted");
        vm.assertEq(_callsUsed(account, session), 1, "call counted");
    }

    function test_sessionKey_personalSignatureRunsOp() public {
        _handleOk(_signPersonal(_op(address(account), "", _mintCall(address(account))), sessionKey));
        vm.assertEq(_balance(account), 1, "session key minted");
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
        vm.assertTrue(account.getSessionKey(secondSession).registered, "registered");
    }

    function test_signature_strangerRefused() public {
        _handleExpectRevert(
            _signPersonal(_op(address(account), "", _mintCall(address(account))), strangerKey),
            _aa24()
        );
        _handleExpectRevert(
            _signRaw(_op(address(account), "", _mintCall(address(account))), strangerKey), _aa24()
        );
    }

    function test_signature_overAnotherOpRefused() public {
        PackedUserOperation memory signed =
            _signPersonal(_op(address(account), "", _mintCall(address(account))), ownerKey);
        PackedUserOperation memory op =
            _op(address(account), "", _execute(address(items), 0, _mintData(stranger, 1)));
        op.signature = signed.signature;
        _handleExpectRevert(op, _aa24());
    }

    function test_signature_malformedRefused() public {
        bytes[4] memory signatures = [bytes(""), new bytes(65), hex"deadbeef", new bytes(64)];
        for (uint256 i = 0; i < signatures.length; i++) {
            PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
            op.signature = signatures[i];
            _handleExpectRevert(op, _aa24());
        }
    }

    /// @dev A malleated (high-s) copy of a valid owner signature is refused.
    function test_signature_highSRefused() public {
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(ownerKey, _personalDigest(entryPoint.getUserOpHash(op)));
        op.signature = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? 28 : 27);
        _handleExpectRevert(op, _aa24());
    }

    function testFuzz_signature_bothFormsWork(uint256 keySeed, bool raw, bool asOwner) public {
        uint256 key = ownerKey;
        if (!asOwner) {
            key = _privateKey(keySeed);
            vm.assume(key != ownerKey && key != sessionKey);
            _registerByOp(account, vm.addr(key), NOW - 1, NOW + 1 days, _mintPermissions(1));
        }
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        _handleOk(raw ? _signRaw(op, key) : _signPersonal(op, key));
        vm.assertEq(_balance(account), 1, "minted");
    }

    function testFuzz_signature_unknownSignerRefused(uint256 keySeed, bool raw) public {
        uint256 key = _privateKey(keySeed);
        vm.assume(key != ownerKey && key != sessionKey);
        PackedUserOperation memory op = _op(address(account), "", _mintCall(address(account)));
        _handleExpectRevert(raw ? _signRaw(op, key) : _signPersonal(op, key), _aa24());
    }
}

/// @notice Rule 12: the account reports registrations, revocations and session-key use.
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
            secondSession, NOW + 5, NOW + 500, 4, 1 ether, 2 ether, DEFAULT_GAS_BUDGET, 2
        );
        _handleOk(op, userOpHash);
    }

    function test_events_sessionKeyUsed() public {
        PackedUserOperation memory op = _opBy(account, sessionKey, _mintCall(address(account)));
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyUsed(session, 1, 0, OP_MAX_GAS_COST);
        _handleOk(op, userOpHash);

        BaseAccount.Call[] memory calls = new BaseAccount.Call[](2);
        calls[0] = _call(address(items), 2 * PRICE, _buyData(2));
        calls[1] = _call(address(items), 0, _mintData(address(account), 1));
        op = _opBy(account, sessionKey, _executeBatch(calls));
        userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyUsed(session, 3, uint128(2 * PRICE), 2 * OP_MAX_GAS_COST);
        _handleOk(op, userOpHash);
    }

    function test_events_sessionKeyRevoked() public {
        PackedUserOperation memory op = _opBy(
            account,
            ownerKey,
            _execute(address(account), 0, abi.encodeCall(account.revokeSessionKey, (session)))
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.SessionKeyRevoked(session);
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
            _execute(address(account), 0, abi.encodeCall(account.transferOwnership, (stranger)))
        );
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, true, true, address(account));
        emit SessionKeyAccount.OwnershipTransferred(owner, stranger);
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
                session, uint32(calls), uint128(spent), uint128(calls * OP_MAX_GAS_COST)
            );
            _handleOk(op, userOpHash);
        }
        vm.assertEq(account.getSessionKey(session).valueSpent, spent, "stored total");
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
            secondSession,
            validAfter,
            validUntil,
            callLimit,
            valuePerCallLimit,
            valueBudget,
            DEFAULT_GAS_BUDGET,
            1
        );
        _handleOk(op, userOpHash);

        SessionKeyAccount.SessionKey memory state = account.getSessionKey(secondSession);
        vm.assertEq(state.validAfter, validAfter, "validAfter stored");
        vm.assertEq(state.validUntil, validUntil, "validUntil stored");
        vm.assertEq(state.callLimit, callLimit, "callLimit stored");
        vm.assertEq(state.valuePerCallLimit, valuePerCallLimit, "per-call limit stored");
        vm.assertEq(state.valueBudget, valueBudget, "budget stored");
    }
}
