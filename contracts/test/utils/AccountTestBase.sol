// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {GameItems} from "../../src/GameItems.sol";
import {SessionKeyAccount} from "../../src/SessionKeyAccount.sol";
import {SessionKeyAccountFactory} from "../../src/SessionKeyAccountFactory.sol";
import {Signer, SignerKind} from "../../src/Signers.sol";
import {P256PrecompileStandIn} from "./P256PrecompileStandIn.sol";
import {TestBase, Vm} from "./TestBase.sol";
import {BaseAccount} from "@account-abstraction/contracts/core/BaseAccount.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {
    PackedUserOperation
} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";

/// @notice The world every account test runs in: the canonical EntryPoint v0.8 (deployed from
/// its npm artifact through the CREATE2 deployer, at its mainnet address), the factory, two
/// GameItems contracts, and the helpers that build, sign and bundle user operations.
///
/// Signatures follow the account's v2 framing: `0x00 ‖ ownerSignature` for the owner, and
/// `0x01 ‖ registration ‖ validUntil ‖ keySignature` for a session key, whose key signs
/// `sessionOperationHash(userOpHash, registration, validUntil)`. The helpers remember the latest
/// registration id of each key id (`registrationOf`), so a test can say "an op by this key" and
/// get it framed with the key's current registration and a deadline an hour from now.
///
/// A suite that overrides `_p256PrecompileStandIn` to return true gets a P-256 precompile
/// stand-in at 0x100 before the factory (and so the account implementation) is deployed, and
/// its accounts verify P-256 through 0x100; otherwise they use the Solidity verifier.
abstract contract AccountTestBase is TestBase {
    // ---------------------------------------------------------------------------------------
    // Canonical deployment of EntryPoint v0.8
    // ---------------------------------------------------------------------------------------

    address internal constant CREATE2_DEPLOYER = 0x4e59b44847b379578588920cA78FbF26c0B4956C;
    bytes internal constant CREATE2_DEPLOYER_CODE =
        hex"7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";
    bytes32 internal constant ENTRY_POINT_SALT =
        0x0a59dbff790c23c976a548690c27297883cc66b4c67024f9117b0238995e35e9;
    address internal constant ENTRY_POINT_ADDRESS = 0x4337084D9E255Ff0702461CF8895CE9E3b5Ff108;
    string internal constant ENTRY_POINT_ARTIFACT =
        "node_modules/@account-abstraction/contracts/artifacts/EntryPoint.json";

    // ---------------------------------------------------------------------------------------
    // Defaults
    // ---------------------------------------------------------------------------------------

    /// @dev A realistic clock; tests warp relative to it.
    uint48 internal constant NOW = 1_750_000_000;
    uint128 internal constant VERIFICATION_GAS_LIMIT = 1_000_000;
    uint128 internal constant CALL_GAS_LIMIT = 500_000;
    uint256 internal constant PRE_VERIFICATION_GAS = 50_000;
    uint128 internal constant MAX_PRIORITY_FEE = 1 gwei;
    uint128 internal constant MAX_FEE = 1 gwei;
    uint256 internal constant ACCOUNT_FUNDING = 10 ether;
    /// @dev What the account charges a session key's gas budget for one default op: its worst
    /// case, (verification + call + preVerification gas) * maxFeePerGas.
    uint128 internal constant OP_MAX_GAS_COST =
        uint128((VERIFICATION_GAS_LIMIT + CALL_GAS_LIMIT + PRE_VERIFICATION_GAS) * MAX_FEE);
    /// @dev Gas budget of the default permissions: hundreds of default ops.
    uint128 internal constant DEFAULT_GAS_BUDGET = 1 ether;
    uint256 internal constant ITEM_ID = 7;
    /// @dev How long a session-key op stays valid after it is signed, by default: the op's own
    /// deadline, `validUntil` of its signature frame.
    uint256 internal constant OP_LIFETIME = 1 hours;

    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant P256_N =
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551;
    address internal constant P256_PRECOMPILE = address(0x100);

    /// @dev The signer byte that starts a user operation's signature.
    uint8 internal constant OWNER_SIGNATURE = 0x00;
    uint8 internal constant SESSION_KEY_SIGNATURE = 0x01;
    /// @dev Pinned here rather than read from the account: the relayer computes it off-chain.
    bytes32 internal constant SESSION_OPERATION_TYPEHASH =
        keccak256("SessionOperation(bytes32 userOpHash,bytes32 registration,uint48 validUntil)");

    /// @dev WebAuthn: the relying party, the origin, and the authenticator flags of an everyday
    /// assertion (user present, user verified).
    string internal constant RP_ID = "latchkey.example";
    string internal constant ORIGIN = "https://latchkey.example";
    bytes1 internal constant FLAG_UP = 0x01;
    bytes1 internal constant FLAG_UV = 0x04;
    bytes1 internal constant FLAG_BE = 0x08;
    bytes1 internal constant FLAG_BS = 0x10;
    bytes1 internal constant FLAGS_UP_UV = 0x05;
    /// @dev Where `"type":"..."` starts in the client data this suite builds: right after `{`.
    uint256 internal constant TYPE_INDEX = 1;

    /// @dev A private key and the kind of signer it is used as. A P-256 private key serves as a
    /// raw P-256 key or as a WebAuthn credential; the two have different ids.
    struct Key {
        SignerKind kind;
        uint256 privateKey;
    }

    IEntryPoint internal entryPoint;
    SessionKeyAccountFactory internal factory;
    GameItems internal items;
    /// @dev A second GameItems that no default permission covers: the "wrong target".
    GameItems internal otherItems;

    uint256 internal ownerKey = 0xA11CE;
    address internal owner;
    uint256 internal sessionKey = 0x5E5510;
    address internal session;
    uint256 internal secondSessionKey = 0x5E5520;
    address internal secondSession;
    uint256 internal strangerKey = 0xBAD;
    address internal stranger;

    address payable internal bundler = payable(address(0xB0B1E5));
    address payable internal beneficiary = payable(address(0xBE7EF1C1A7));
    /// @dev A plain EOA that session keys may pay (selector 0x00000000).
    address payable internal recipient = payable(address(0x7EC1E17));

    /// @dev The latest registration id the helpers made for each key id.
    mapping(address keyId => bytes32) internal registrationOf;
    uint256 private _registrationCount;

    /// @dev Whether this suite's accounts verify P-256 through a stand-in at 0x100.
    function _p256PrecompileStandIn() internal pure virtual returns (bool) {
        return false;
    }

    function setUp() public virtual {
        vm.warp(NOW);
        entryPoint = _deployCanonicalEntryPoint();
        if (_p256PrecompileStandIn()) _etchP256PrecompileStandIn();
        factory = new SessionKeyAccountFactory(entryPoint);
        vm.assertEq(
            factory.accountImplementation().usesP256Precompile(),
            _p256PrecompileStandIn(),
            "the implementation picked the expected P-256 path"
        );
        items = new GameItems();
        otherItems = new GameItems();

        owner = vm.addr(ownerKey);
        session = vm.addr(sessionKey);
        secondSession = vm.addr(secondSessionKey);
        stranger = vm.addr(strangerKey);
        vm.deal(bundler, 1 ether);

        vm.label(address(entryPoint), "EntryPoint");
        vm.label(address(factory), "SessionKeyAccountFactory");
        vm.label(address(items), "GameItems");
        vm.label(address(otherItems), "OtherGameItems");
        vm.label(owner, "owner");
        vm.label(session, "session");
        vm.label(secondSession, "secondSession");
        vm.label(stranger, "stranger");
        vm.label(bundler, "bundler");
        vm.label(beneficiary, "beneficiary");
        vm.label(recipient, "recipient");
    }

    function _deployCanonicalEntryPoint() internal returns (IEntryPoint) {
        if (CREATE2_DEPLOYER.code.length == 0) vm.etch(CREATE2_DEPLOYER, CREATE2_DEPLOYER_CODE);
        bytes memory code = vm.getCode(ENTRY_POINT_ARTIFACT);
        (bool ok, bytes memory deployed) =
            CREATE2_DEPLOYER.call(abi.encodePacked(ENTRY_POINT_SALT, code));
        vm.assertTrue(ok, "CREATE2 deployment of the EntryPoint failed");
        vm.assertEq(
            address(bytes20(deployed)), ENTRY_POINT_ADDRESS, "EntryPoint not at canonical address"
        );
        vm.assertGt(ENTRY_POINT_ADDRESS.code.length, 0, "EntryPoint has no code");
        return IEntryPoint(ENTRY_POINT_ADDRESS);
    }

    /// @dev Puts the precompile stand-in at 0x100. Only implementations deployed afterwards use
    /// it.
    function _etchP256PrecompileStandIn() internal {
        vm.etch(P256_PRECOMPILE, type(P256PrecompileStandIn).runtimeCode);
        vm.label(P256_PRECOMPILE, "P256PrecompileStandIn");
    }

    // ---------------------------------------------------------------------------------------
    // Signers
    // ---------------------------------------------------------------------------------------

    function _ethKey(uint256 privateKey) internal pure returns (Key memory) {
        return Key({kind: SignerKind.Secp256k1, privateKey: privateKey});
    }

    function _p256Key(uint256 privateKey) internal pure returns (Key memory) {
        return Key({kind: SignerKind.P256, privateKey: privateKey});
    }

    function _webAuthnKey(uint256 privateKey) internal pure returns (Key memory) {
        return Key({kind: SignerKind.WebAuthn, privateKey: privateKey});
    }

    /// @dev An Ethereum signer: its key is the 20-byte address.
    function _ethSigner(address account) internal pure returns (Signer memory) {
        return Signer({kind: SignerKind.Secp256k1, key: abi.encodePacked(account)});
    }

    /// @dev The public form of `key`, as the account and the factory take it.
    function _signerOf(Key memory key) internal pure returns (Signer memory) {
        if (key.kind == SignerKind.Secp256k1) return _ethSigner(vm.addr(key.privateKey));
        (uint256 x, uint256 y) = vm.publicKeyP256(key.privateKey);
        return Signer({kind: key.kind, key: abi.encodePacked(x, y)});
    }

    /// @dev The 160-bit id of `key`: its address, or the low 160 bits of
    /// keccak256(uint8(kind) ‖ x ‖ y) for a P-256 kind.
    function _idOf(Key memory key) internal pure returns (address) {
        if (key.kind == SignerKind.Secp256k1) return vm.addr(key.privateKey);
        (uint256 x, uint256 y) = vm.publicKeyP256(key.privateKey);
        return _p256Id(key.kind, x, y);
    }

    function _p256Id(SignerKind kind, uint256 x, uint256 y) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(uint8(kind), x, y)))));
    }

    function _privateKey(uint256 seed) internal pure returns (uint256) {
        return bound(seed, 1, SECP256K1_N - 1);
    }

    function _p256PrivateKey(uint256 seed) internal pure returns (uint256) {
        return bound(seed, 1, P256_N - 1);
    }

    /// @dev A private key valid for both curves, for a key of any kind.
    function _keyOf(SignerKind kind, uint256 seed) internal pure returns (Key memory) {
        return Key({kind: kind, privateKey: _p256PrivateKey(seed)});
    }

    // ---------------------------------------------------------------------------------------
    // Raw signatures
    // ---------------------------------------------------------------------------------------

    /// @dev A secp256k1 signature `r ‖ s ‖ v` over `digest`, as it is.
    function _sig(uint256 privateKey, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(privateKey, digest);
        return abi.encodePacked(r, s, v);
    }

    function _personalDigest(bytes32 hash) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", hash));
    }

    /// @dev A low-s P-256 signature over the digest `digest`.
    function _p256Sign(uint256 privateKey, bytes32 digest)
        internal
        pure
        returns (bytes32 r, bytes32 s)
    {
        (r, s) = vm.signP256(privateKey, digest);
        if (uint256(s) > P256_N / 2) s = bytes32(P256_N - uint256(s));
    }

    /// @dev What `key` signs for `message`: a secp256k1 key signs it raw, a raw P-256 key signs
    /// sha256(message) as WebCrypto does (`r ‖ s`), a WebAuthn key signs an assertion whose
    /// challenge is `message`.
    function _keySignature(Key memory key, bytes32 message) internal pure returns (bytes memory) {
        if (key.kind == SignerKind.Secp256k1) return _sig(key.privateKey, message);
        if (key.kind == SignerKind.P256) {
            (bytes32 r, bytes32 s) = _p256Sign(key.privateKey, sha256(abi.encodePacked(message)));
            return abi.encodePacked(r, s);
        }
        return _webAuthn(key.privateKey, message);
    }

    // ---------------------------------------------------------------------------------------
    // WebAuthn assertions
    // ---------------------------------------------------------------------------------------

    /// @dev rpIdHash ‖ flags ‖ signCount.
    function _authenticatorData(bytes1 flags) internal pure returns (bytes memory) {
        return abi.encodePacked(sha256(bytes(RP_ID)), flags, uint32(7));
    }

    /// @dev The client data a browser makes for `navigator.credentials.get` of `challenge`, with
    /// `type_` as its type.
    function _clientDataJSON(string memory type_, bytes32 challenge)
        internal
        pure
        returns (string memory)
    {
        return string.concat(
            '{"type":"',
            type_,
            '","challenge":"',
            Base64.encodeURL(abi.encodePacked(challenge)),
            '","origin":"',
            ORIGIN,
            '","crossOrigin":false}'
        );
    }

    /// @dev Where `"challenge":"..."` starts in `_clientDataJSON(type_, ...)`.
    function _challengeIndex(string memory type_) internal pure returns (uint256) {
        return bytes('{"type":"').length + bytes(type_).length + bytes('",').length;
    }

    /// @dev The P-256 digest a WebAuthn assertion signs.
    function _webAuthnDigest(bytes memory authenticatorData, string memory clientDataJSON)
        internal
        pure
        returns (bytes32)
    {
        return sha256(abi.encodePacked(authenticatorData, sha256(bytes(clientDataJSON))));
    }

    /// @dev OpenZeppelin's `WebAuthnAuth`, ABI-encoded as the account decodes it: the tuple
    /// (r, s, challengeIndex, typeIndex, authenticatorData, clientDataJSON).
    function _encodeAssertion(
        bytes32 r,
        bytes32 s,
        uint256 challengeIndex,
        uint256 typeIndex,
        bytes memory authenticatorData,
        string memory clientDataJSON
    ) internal pure returns (bytes memory) {
        return abi.encode(r, s, challengeIndex, typeIndex, authenticatorData, clientDataJSON);
    }

    /// @dev A signed assertion over the given authenticator and client data.
    function _webAuthn(
        uint256 privateKey,
        bytes memory authenticatorData,
        string memory clientDataJSON,
        uint256 challengeIndex
    ) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s) = _p256Sign(
            privateKey, _webAuthnDigest(authenticatorData, clientDataJSON)
        );
        return _encodeAssertion(r, s, challengeIndex, TYPE_INDEX, authenticatorData, clientDataJSON);
    }

    /// @dev An everyday assertion (user present and verified) whose challenge is `challenge`.
    function _webAuthn(uint256 privateKey, bytes32 challenge) internal pure returns (bytes memory) {
        return _webAuthn(
            privateKey,
            _authenticatorData(FLAGS_UP_UV),
            _clientDataJSON("webauthn.get", challenge),
            _challengeIndex("webauthn.get")
        );
    }

    // ---------------------------------------------------------------------------------------
    // Permissions
    // ---------------------------------------------------------------------------------------

    function _allow(address target, bytes4 selector)
        internal
        pure
        returns (SessionKeyAccount.CallPermission memory)
    {
        return SessionKeyAccount.CallPermission({
            target: target,
            selector: selector,
            anySelector: false,
            rules: new SessionKeyAccount.ArgumentRule[](0)
        });
    }

    function _allowAny(address target)
        internal
        pure
        returns (SessionKeyAccount.CallPermission memory)
    {
        return SessionKeyAccount.CallPermission({
            target: target,
            selector: bytes4(0),
            anySelector: true,
            rules: new SessionKeyAccount.ArgumentRule[](0)
        });
    }

    function _list(SessionKeyAccount.CallPermission memory a)
        internal
        pure
        returns (SessionKeyAccount.CallPermission[] memory calls)
    {
        calls = new SessionKeyAccount.CallPermission[](1);
        calls[0] = a;
    }

    function _list(
        SessionKeyAccount.CallPermission memory a,
        SessionKeyAccount.CallPermission memory b
    ) internal pure returns (SessionKeyAccount.CallPermission[] memory calls) {
        calls = new SessionKeyAccount.CallPermission[](2);
        calls[0] = a;
        calls[1] = b;
    }

    function _permissions(
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget,
        SessionKeyAccount.CallPermission[] memory calls
    ) internal pure returns (SessionKeyAccount.SessionPermissions memory) {
        return _permissions(callLimit, valuePerCallLimit, valueBudget, DEFAULT_GAS_BUDGET, calls);
    }

    function _permissions(
        uint32 callLimit,
        uint128 valuePerCallLimit,
        uint128 valueBudget,
        uint128 gasBudget,
        SessionKeyAccount.CallPermission[] memory calls
    ) internal pure returns (SessionKeyAccount.SessionPermissions memory) {
        return SessionKeyAccount.SessionPermissions({
            callLimit: callLimit,
            valuePerCallLimit: valuePerCallLimit,
            valueBudget: valueBudget,
            gasBudget: gasBudget,
            calls: calls,
            limits: new SessionKeyAccount.SpendLimit[](0)
        });
    }

    /// @dev The everyday game permission: mint on `items`, `callLimit` times, no value.
    function _mintPermissions(uint32 callLimit)
        internal
        view
        returns (SessionKeyAccount.SessionPermissions memory)
    {
        return _permissions(callLimit, 0, 0, _list(_allow(address(items), GameItems.mint.selector)));
    }

    // ---------------------------------------------------------------------------------------
    // Registrations
    // ---------------------------------------------------------------------------------------

    /// @dev A registration id never used before in this test, recorded as the current
    /// registration of `keyId`.
    function _newRegistration(address keyId) internal returns (bytes32 registration) {
        registration = keccak256(abi.encode("latchkey.test.registration", ++_registrationCount));
        registrationOf[keyId] = registration;
    }

    /// @dev The state of the current registration of `keyId` on `account`.
    function _sessionOf(SessionKeyAccount account, address keyId)
        internal
        view
        returns (SessionKeyAccount.SessionKey memory)
    {
        return account.getSessionKey(registrationOf[keyId]);
    }

    function _callsUsed(SessionKeyAccount account, address keyId) internal view returns (uint256) {
        return _sessionOf(account, keyId).callsUsed;
    }

    function _isRegistered(SessionKeyAccount account, address keyId) internal view returns (bool) {
        return _sessionOf(account, keyId).registered;
    }

    // ---------------------------------------------------------------------------------------
    // Call data
    // ---------------------------------------------------------------------------------------

    function _initCode(Signer memory owner_, uint256 salt) internal view returns (bytes memory) {
        return abi.encodePacked(
            address(factory), abi.encodeCall(SessionKeyAccountFactory.createAccount, (owner_, salt))
        );
    }

    function _initCode(address owner_, uint256 salt) internal view returns (bytes memory) {
        return _initCode(_ethSigner(owner_), salt);
    }

    function _execute(address target, uint256 value, bytes memory data)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeCall(BaseAccount.execute, (target, value, data));
    }

    function _executeBatch(BaseAccount.Call[] memory calls) internal pure returns (bytes memory) {
        return abi.encodeCall(BaseAccount.executeBatch, (calls));
    }

    function _registerData(
        bytes32 registration,
        Signer memory key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal pure returns (bytes memory) {
        return abi.encodeCall(
            SessionKeyAccount.registerSessionKey,
            (registration, key, validAfter, validUntil, permissions)
        );
    }

    /// @dev `execute(account, 0, registerSessionKey(...))`: what an owner op sends.
    function _registerCallData(
        address account,
        bytes32 registration,
        Signer memory key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal pure returns (bytes memory) {
        return
            _execute(
                account, 0, _registerData(registration, key, validAfter, validUntil, permissions)
            );
    }

    /// @dev As above, for the Ethereum key `key` under a fresh registration id, which becomes
    /// the key's current one.
    function _registerCallData(
        address account,
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (bytes memory) {
        return _registerCallData(
            account, _newRegistration(key), _ethSigner(key), validAfter, validUntil, permissions
        );
    }

    /// @dev As above, for `key` of any kind.
    function _registerCallData(
        address account,
        Key memory key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (bytes memory) {
        return _registerCallData(
            account,
            _newRegistration(_idOf(key)),
            _signerOf(key),
            validAfter,
            validUntil,
            permissions
        );
    }

    /// @dev `execute(account, 0, revokeSessionKey(registration))`.
    function _revokeCallData(address account, bytes32 registration)
        internal
        pure
        returns (bytes memory)
    {
        return _execute(
            account, 0, abi.encodeCall(SessionKeyAccount.revokeSessionKey, (registration))
        );
    }

    /// @dev `execute(account, 0, revokeAllSessionKeys())`.
    function _revokeAllCallData(address account) internal pure returns (bytes memory) {
        return _execute(account, 0, abi.encodeCall(SessionKeyAccount.revokeAllSessionKeys, ()));
    }

    /// @dev `execute(account, 0, transferOwnership(newOwner))`.
    function _transferCallData(address account, Signer memory newOwner)
        internal
        pure
        returns (bytes memory)
    {
        return _execute(account, 0, abi.encodeCall(SessionKeyAccount.transferOwnership, (newOwner)));
    }

    function _mintData(address to, uint256 amount) internal pure returns (bytes memory) {
        return abi.encodeCall(GameItems.mint, (to, ITEM_ID, amount));
    }

    function _buyData(uint256 amount) internal pure returns (bytes memory) {
        return abi.encodeCall(GameItems.buy, (ITEM_ID, amount));
    }

    function _mintCall(address account) internal view returns (bytes memory) {
        return _execute(address(items), 0, _mintData(account, 1));
    }

    function _call(address target, uint256 value, bytes memory data)
        internal
        pure
        returns (BaseAccount.Call memory)
    {
        return BaseAccount.Call({target: target, value: value, data: data});
    }

    /// @dev A batch of `n` calls, each minting one item to `account`.
    function _mintBatch(address account, uint256 n)
        internal
        view
        returns (BaseAccount.Call[] memory calls)
    {
        calls = new BaseAccount.Call[](n);
        for (uint256 i = 0; i < n; i++) {
            calls[i] = _call(address(items), 0, _mintData(account, 1));
        }
    }

    // ---------------------------------------------------------------------------------------
    // User operations
    // ---------------------------------------------------------------------------------------

    function _op(address sender, bytes memory initCode, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op.sender = sender;
        op.nonce = entryPoint.getNonce(sender, 0);
        op.initCode = initCode;
        op.callData = callData;
        op.accountGasLimits = bytes32((uint256(VERIFICATION_GAS_LIMIT) << 128) | CALL_GAS_LIMIT);
        op.preVerificationGas = PRE_VERIFICATION_GAS;
        op.gasFees = bytes32((uint256(MAX_PRIORITY_FEE) << 128) | MAX_FEE);
    }

    /// @dev The EntryPoint nonce key an op signed by `signerId` uses: a session key uses the
    /// first lane of its own family (its id in the top 160 bits); the owner, and whoever signs
    /// a counterfactual account's first op, uses key 0.
    function _nonceKeyFor(address sender, address signerId) internal view returns (uint192) {
        if (sender.code.length == 0) return 0;
        if (SessionKeyAccount(payable(sender)).owner() == signerId) return 0;
        return _lane(signerId, 0);
    }

    /// @dev Lane `subLane` of the nonce keys that belong to the session key with id `keyId`.
    function _lane(address keyId, uint32 subLane) internal pure returns (uint192) {
        return (uint192(uint160(keyId)) << 32) | subLane;
    }

    /// @dev Puts `op` in the nonce lane of `signerId`, at that lane's next sequence number.
    function _useNonceLaneOf(PackedUserOperation memory op, address signerId) internal view {
        op.nonce = entryPoint.getNonce(op.sender, _nonceKeyFor(op.sender, signerId));
    }

    /// @dev The default deadline of a session-key op signed now.
    function _opDeadline() internal view returns (uint48) {
        uint256 deadline = block.timestamp + OP_LIFETIME;
        return deadline > type(uint48).max ? type(uint48).max : uint48(deadline);
    }

    /// @dev What a session key signs for an op (see `SessionKeyAccount.sessionOperationHash`).
    function _sessionOperationHash(bytes32 userOpHash, bytes32 registration, uint48 validUntil)
        internal
        pure
        returns (bytes32)
    {
        return
            keccak256(abi.encode(SESSION_OPERATION_TYPEHASH, userOpHash, registration, validUntil));
    }

    /// @dev What the owner signs for ERC-1271 approval of `hash` on `account`, computed as
    /// documented: the EIP-712 digest of `SessionKeyAccountMessage(hash)` under the domain
    /// (name "SessionKeyAccount", version "2", this chain, the account).
    function _replaySafeHash(address account, bytes32 hash) internal view returns (bytes32) {
        bytes32 domainSeparator = keccak256(
            abi.encode(
                keccak256(
                    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
                ),
                keccak256("SessionKeyAccount"),
                keccak256("2"),
                block.chainid,
                account
            )
        );
        bytes32 structHash =
            keccak256(abi.encode(keccak256("SessionKeyAccountMessage(bytes32 hash)"), hash));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator, structHash));
    }

    function _ownerFrame(bytes memory ownerSignature) internal pure returns (bytes memory) {
        return abi.encodePacked(OWNER_SIGNATURE, ownerSignature);
    }

    function _sessionFrame(bytes32 registration, uint48 validUntil, bytes memory keySignature)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(SESSION_KEY_SIGNATURE, registration, validUntil, keySignature);
    }

    /// @dev EIP-191 personal-sign over the userOpHash by an Ethereum owner (what
    /// `signMessage({raw: hash})` makes), owner-framed. The op moves to the signer's nonce lane
    /// first.
    function _signPersonal(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        _useNonceLaneOf(op, vm.addr(privateKey));
        return _signPersonalAsIs(op, privateKey);
    }

    /// @dev As `_signPersonal`, keeping the op's nonce as it is.
    function _signPersonalAsIs(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        op.signature = _ownerFrame(_sig(privateKey, _personalDigest(entryPoint.getUserOpHash(op))));
        return op;
    }

    /// @dev An Ethereum owner's signature over the raw EIP-712 userOpHash, no prefix,
    /// owner-framed, in the signer's nonce lane.
    function _signRaw(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        _useNonceLaneOf(op, vm.addr(privateKey));
        op.signature = _ownerFrame(_sig(privateKey, entryPoint.getUserOpHash(op)));
        return op;
    }

    /// @dev The owner's signature of `op` as it is: personal-sign for an Ethereum owner, an
    /// assertion over the userOpHash for a passkey.
    function _signAsOwner(PackedUserOperation memory op, Key memory key)
        internal
        view
        returns (PackedUserOperation memory)
    {
        if (key.kind == SignerKind.Secp256k1) return _signPersonalAsIs(op, key.privateKey);
        op.signature = _ownerFrame(_webAuthn(key.privateKey, entryPoint.getUserOpHash(op)));
        return op;
    }

    /// @dev A session key's signature of `op` as it is, under `registration`, valid until
    /// `validUntil`.
    function _signSession(
        PackedUserOperation memory op,
        Key memory key,
        bytes32 registration,
        uint48 validUntil
    ) internal view returns (PackedUserOperation memory) {
        bytes32 message = _sessionOperationHash(
            entryPoint.getUserOpHash(op), registration, validUntil
        );
        op.signature = _sessionFrame(registration, validUntil, _keySignature(key, message));
        return op;
    }

    /// @dev As above, for an Ethereum session key; it signs the message raw. (Kept apart from
    /// the generic version so that suites with Ethereum keys only do not compile the P-256
    /// helpers.)
    function _signSession(
        PackedUserOperation memory op,
        uint256 privateKey,
        bytes32 registration,
        uint48 validUntil
    ) internal view returns (PackedUserOperation memory) {
        bytes32 message = _sessionOperationHash(
            entryPoint.getUserOpHash(op), registration, validUntil
        );
        op.signature = _sessionFrame(registration, validUntil, _sig(privateKey, message));
        return op;
    }

    /// @dev The session key `key`'s signature of `op`, moved to the first nonce lane of the key
    /// first, under the key's current registration with the default deadline.
    function _signBySession(PackedUserOperation memory op, Key memory key)
        internal
        view
        returns (PackedUserOperation memory)
    {
        address keyId = _idOf(key);
        op.nonce = entryPoint.getNonce(op.sender, _lane(keyId, 0));
        return _signSession(op, key, registrationOf[keyId], _opDeadline());
    }

    function _signBySession(PackedUserOperation memory op, uint256 privateKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        address keyId = vm.addr(privateKey);
        op.nonce = entryPoint.getNonce(op.sender, _lane(keyId, 0));
        return _signSession(op, privateKey, registrationOf[keyId], _opDeadline());
    }

    /// @dev An op from `account` carrying `callData`, signed by `key` with its nonce lane: as
    /// the owner when `key` owns the account (or the account is not deployed yet, or the key
    /// has no registration), else as a session key under its current registration with the
    /// default deadline.
    function _opBy(SessionKeyAccount account, Key memory key, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = _op(address(account), "", callData);
        address keyId = _idOf(key);
        bytes32 registration = registrationOf[keyId];
        if (
            address(account).code.length == 0 || account.owner() == keyId
                || registration == bytes32(0)
        ) {
            return _signAsOwner(op, key);
        }
        op.nonce = entryPoint.getNonce(address(account), _lane(keyId, 0));
        return _signSession(op, key, registration, _opDeadline());
    }

    /// @dev As above, for an Ethereum key.
    function _opBy(SessionKeyAccount account, uint256 privateKey, bytes memory callData)
        internal
        view
        returns (PackedUserOperation memory op)
    {
        op = _op(address(account), "", callData);
        address keyId = vm.addr(privateKey);
        bytes32 registration = registrationOf[keyId];
        if (
            address(account).code.length == 0 || account.owner() == keyId
                || registration == bytes32(0)
        ) {
            return _signPersonalAsIs(op, privateKey);
        }
        op.nonce = entryPoint.getNonce(address(account), _lane(keyId, 0));
        return _signSession(op, privateKey, registration, _opDeadline());
    }

    function _one(PackedUserOperation memory op)
        internal
        pure
        returns (PackedUserOperation[] memory ops)
    {
        ops = new PackedUserOperation[](1);
        ops[0] = op;
    }

    /// @dev Bundles `op` and returns whether its execution phase succeeded (validation failures
    /// revert handleOps, so they surface as a revert here).
    function _handle(PackedUserOperation memory op) internal returns (bool success) {
        return _handle(op, entryPoint.getUserOpHash(op));
    }

    function _handle(PackedUserOperation memory op, bytes32 userOpHash)
        internal
        returns (bool success)
    {
        vm.recordLogs();
        vm.prank(bundler, bundler);
        entryPoint.handleOps(_one(op), beneficiary);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            if (
                logs[i].emitter == address(entryPoint)
                    && logs[i].topics[0] == IEntryPoint.UserOperationEvent.selector
                    && logs[i].topics[1] == userOpHash
            ) {
                (, success,,) = abi.decode(logs[i].data, (uint256, bool, uint256, uint256));
                return success;
            }
        }
        revert("no UserOperationEvent for the op");
    }

    /// @dev Bundles `op` and requires validation and execution to succeed.
    function _handleOk(PackedUserOperation memory op) internal {
        vm.assertTrue(_handle(op), "user operation execution failed");
    }

    /// @dev As `_handleOk`, with the hash computed beforehand, so that nothing but handleOps runs
    /// between a `vm.expectEmit` and the bundle.
    function _handleOk(PackedUserOperation memory op, bytes32 userOpHash) internal {
        vm.assertTrue(_handle(op, userOpHash), "user operation execution failed");
    }

    /// @dev Bundles `op` and expects handleOps to revert with exactly `revertData`.
    function _handleExpectRevert(PackedUserOperation memory op, bytes memory revertData) internal {
        _handleExpectRevert(_one(op), revertData);
    }

    /// @dev Bundles `ops` and expects handleOps to revert with exactly `revertData`.
    function _handleExpectRevert(PackedUserOperation[] memory ops, bytes memory revertData)
        internal
    {
        vm.prank(bundler, bundler);
        vm.expectRevert(revertData);
        entryPoint.handleOps(ops, beneficiary);
    }

    /// @dev Bundles `op`, which passes validation, and expects its execution to revert with
    /// exactly `reason` (reported by the EntryPoint as UserOperationRevertReason).
    function _handleExpectExecutionRevert(PackedUserOperation memory op, bytes memory reason)
        internal
    {
        bytes32 userOpHash = entryPoint.getUserOpHash(op);
        vm.expectEmit(true, true, false, true, address(entryPoint));
        emit IEntryPoint.UserOperationRevertReason(userOpHash, op.sender, op.nonce, reason);
        vm.assertFalse(_handle(op, userOpHash), "user operation execution should have failed");
    }

    // ---------------------------------------------------------------------------------------
    // EntryPoint revert data
    // ---------------------------------------------------------------------------------------

    function _failedOp(uint256 index, string memory reason) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IEntryPoint.FailedOp.selector, index, reason);
    }

    /// @dev validateUserOp reverted (a session key broke a rule).
    function _aa23(bytes memory inner) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IEntryPoint.FailedOpWithRevert.selector, uint256(0), "AA23 reverted", inner
        );
    }

    function _aa10() internal pure returns (bytes memory) {
        return _failedOp(0, "AA10 sender already constructed");
    }

    function _aa22() internal pure returns (bytes memory) {
        return _failedOp(0, "AA22 expired or not due");
    }

    function _aa24() internal pure returns (bytes memory) {
        return _failedOp(0, "AA24 signature error");
    }

    // ---------------------------------------------------------------------------------------
    // Flows
    // ---------------------------------------------------------------------------------------

    /// @dev Funds the counterfactual account of (owner, salt) and deploys it through its first
    /// op's initCode, which carries `callData` (may be empty), signed by the owner.
    function _deploy(uint256 salt, bytes memory callData)
        internal
        returns (SessionKeyAccount account)
    {
        return _deployFor(ownerKey, salt, callData);
    }

    /// @dev As `_deploy`, for the Ethereum owner with private key `ownerPrivateKey`.
    function _deployFor(uint256 ownerPrivateKey, uint256 salt, bytes memory callData)
        internal
        returns (SessionKeyAccount account)
    {
        address accountOwner = vm.addr(ownerPrivateKey);
        address predicted = factory.getAddress(_ethSigner(accountOwner), salt);
        vm.deal(predicted, ACCOUNT_FUNDING);
        _handleOk(
            _signPersonal(_op(predicted, _initCode(accountOwner, salt), callData), ownerPrivateKey)
        );
        account = SessionKeyAccount(payable(predicted));
        vm.label(predicted, "account");
    }

    /// @dev As `_deploy`, for the owner `ownerSigningKey` of any owner kind.
    function _deployFor(Key memory ownerSigningKey, uint256 salt, bytes memory callData)
        internal
        returns (SessionKeyAccount account)
    {
        Signer memory accountOwner = _signerOf(ownerSigningKey);
        address predicted = factory.getAddress(accountOwner, salt);
        vm.deal(predicted, ACCOUNT_FUNDING);
        _handleOk(
            _signAsOwner(_op(predicted, _initCode(accountOwner, salt), callData), ownerSigningKey)
        );
        account = SessionKeyAccount(payable(predicted));
        vm.label(predicted, "account");
    }

    /// @dev Deploys the owner's account (salt 0) and registers `key` in its first op.
    function _deployWithKey(
        Key memory key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (SessionKeyAccount account) {
        address predicted = factory.getAddress(_ethSigner(owner), 0);
        account = _deploy(0, _registerCallData(predicted, key, validAfter, validUntil, permissions));
    }

    /// @dev As above, for the Ethereum key `key`.
    function _deployWithKey(
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (SessionKeyAccount account) {
        address predicted = factory.getAddress(_ethSigner(owner), 0);
        account = _deploy(0, _registerCallData(predicted, key, validAfter, validUntil, permissions));
    }

    /// @dev Deploys the account with `session` registered for a day, for `permissions`.
    function _deployWithSession(SessionKeyAccount.SessionPermissions memory permissions)
        internal
        returns (SessionKeyAccount)
    {
        return _deployWithKey(session, NOW - 1, NOW + 1 days, permissions);
    }

    /// @dev Runs an op signed by the default owner on `account` and requires it to succeed.
    function _ownerOp(SessionKeyAccount account, bytes memory callData) internal {
        _handleOk(_opBy(account, ownerKey, callData));
    }

    /// @dev Registers `key` through an owner-signed op under a fresh registration id, and
    /// returns the id.
    function _registerByOp(
        SessionKeyAccount account,
        Key memory key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (bytes32) {
        _ownerOp(
            account, _registerCallData(address(account), key, validAfter, validUntil, permissions)
        );
        return registrationOf[_idOf(key)];
    }

    /// @dev As above, for the Ethereum key `key`.
    function _registerByOp(
        SessionKeyAccount account,
        address key,
        uint48 validAfter,
        uint48 validUntil,
        SessionKeyAccount.SessionPermissions memory permissions
    ) internal returns (bytes32) {
        _ownerOp(
            account, _registerCallData(address(account), key, validAfter, validUntil, permissions)
        );
        return registrationOf[key];
    }

    /// @dev A session-key op minting one item to the account, which must succeed.
    function _sessionMint(SessionKeyAccount account, uint256 privateKey) internal {
        _handleOk(_opBy(account, privateKey, _mintCall(address(account))));
    }

    /// @dev As above, for a key of any kind.

    function _sessionMint(SessionKeyAccount account, Key memory key) internal {
        _handleOk(_opBy(account, key, _mintCall(address(account))));
    }

    function _balance(SessionKeyAccount account) internal view returns (uint256) {
        return items.balanceOf(address(account), ITEM_ID);
    }
}
