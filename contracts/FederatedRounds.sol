// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title FederatedRounds
/// @notice Orders federated-learning rounds between one organization (the org) and an
/// allowlist of clients. Model blobs live on IPFS; this contract only records which CID
/// and sha256 digest each party published, and when. Aggregation happens off-chain.
/// @dev Round life: Open -> Closed (new model) or Open -> Failed (too few updates by the
/// deadline). Deadlines are judged by block.timestamp. Update CIDs live in events only, so
/// submitUpdate stays cheap; digests and sample counts are stored. There are no loops over
/// participants. While paused, every state change except unpause and the org transfer
/// reverts with ContractPaused.
contract FederatedRounds {
    enum RoundStatus {
        None,
        Open,
        Closed,
        Failed
    }

    struct Round {
        RoundStatus status;
        uint64 deadline;
        uint32 minUpdates;
        uint32 maxUpdates;
        uint32 numUpdates;
        bytes32 baseDigest;
        bytes32 modelDigest;
        string baseCid;
        string configCid;
        string modelCid;
        string manifestCid;
    }

    struct Update {
        bytes32 digest;
        uint64 numSamples;
        bool submitted;
    }

    /// @notice Longest allowed time between opening a round and its deadline.
    uint64 public constant MAX_DURATION = 30 days;
    /// @notice Longest allowed CID string, in bytes.
    uint256 public constant MAX_CID_LENGTH = 128;

    address public org;
    bool public paused;
    address public pendingOrg;
    uint256 public currentRoundId;

    mapping(address => bool) public isClient;
    mapping(uint256 => Round) private _rounds;
    mapping(uint256 => mapping(address => Update)) private _updates;

    event ClientAdded(address indexed client);
    event ClientRemoved(address indexed client);
    event RoundOpened(
        uint256 indexed roundId,
        string baseCid,
        bytes32 baseDigest,
        uint64 deadline,
        uint32 minUpdates,
        uint32 maxUpdates,
        string configCid
    );
    event UpdateSubmitted(
        uint256 indexed roundId,
        address indexed client,
        string updateCid,
        bytes32 digest,
        uint64 numSamples
    );
    event RoundClosed(
        uint256 indexed roundId,
        string modelCid,
        bytes32 modelDigest,
        string manifestCid,
        uint32 numUpdates
    );
    event RoundFailed(uint256 indexed roundId, uint32 numUpdates);
    event Paused(address indexed account);
    event Unpaused(address indexed account);
    event OrgTransferStarted(address indexed previousOrg, address indexed newOrg);
    event OrgTransferred(address indexed previousOrg, address indexed newOrg);

    error NotOrg(address caller);
    error NotPendingOrg(address caller);
    error ZeroAddress();
    error ContractPaused();
    error NotPaused();
    error AlreadyClient(address client);
    error NotClient(address account);
    error RoundNotSettled(uint256 roundId);
    error BadDeadline(uint64 deadline, uint64 earliest, uint64 latest);
    error BadUpdateBounds(uint32 minUpdates, uint32 maxUpdates);
    error EmptyCid();
    error CidTooLong(uint256 length, uint256 maxLength);
    error EmptyDigest();
    error ZeroSamples();
    error UnknownRound(uint256 roundId);
    error RoundNotOpen(uint256 roundId);
    error DeadlinePassed(uint256 roundId, uint64 deadline);
    error AlreadySubmitted(uint256 roundId, address client);
    error RoundFull(uint256 roundId, uint32 maxUpdates);
    error TooEarly(uint256 roundId, uint64 deadline);
    error NotEnoughUpdates(uint256 roundId, uint32 numUpdates, uint32 minUpdates);
    error EnoughUpdates(uint256 roundId, uint32 numUpdates, uint32 minUpdates);

    modifier onlyOrg() {
        if (msg.sender != org) revert NotOrg(msg.sender);
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert ContractPaused();
        _;
    }

    constructor() {
        org = msg.sender;
        emit OrgTransferred(address(0), msg.sender);
    }

    // ----- clients -----

    function addClient(address client) external onlyOrg whenNotPaused {
        _addClient(client);
    }

    function addClients(address[] calldata clients) external onlyOrg whenNotPaused {
        for (uint256 i = 0; i < clients.length; ++i) {
            _addClient(clients[i]);
        }
    }

    function removeClient(address client) external onlyOrg whenNotPaused {
        if (!isClient[client]) revert NotClient(client);
        isClient[client] = false;
        emit ClientRemoved(client);
    }

    function _addClient(address client) private {
        if (client == address(0)) revert ZeroAddress();
        if (isClient[client]) revert AlreadyClient(client);
        isClient[client] = true;
        emit ClientAdded(client);
    }

    // ----- rounds -----

    function openRound(
        string calldata baseCid,
        bytes32 baseDigest,
        uint64 deadline,
        uint32 minUpdates,
        uint32 maxUpdates,
        string calldata configCid
    ) external onlyOrg whenNotPaused returns (uint256 roundId) {
        uint256 previous = currentRoundId;
        if (previous != 0 && _rounds[previous].status == RoundStatus.Open) {
            revert RoundNotSettled(previous);
        }
        uint64 nowTs = uint64(block.timestamp);
        if (deadline <= nowTs || deadline > nowTs + MAX_DURATION) {
            revert BadDeadline(deadline, nowTs + 1, nowTs + MAX_DURATION);
        }
        if (minUpdates == 0 || maxUpdates < minUpdates) {
            revert BadUpdateBounds(minUpdates, maxUpdates);
        }
        _checkCid(baseCid);
        _checkCid(configCid);
        if (baseDigest == bytes32(0)) revert EmptyDigest();

        roundId = previous + 1;
        currentRoundId = roundId;
        Round storage r = _rounds[roundId];
        r.status = RoundStatus.Open;
        r.deadline = deadline;
        r.minUpdates = minUpdates;
        r.maxUpdates = maxUpdates;
        r.baseDigest = baseDigest;
        r.baseCid = baseCid;
        r.configCid = configCid;
        emit RoundOpened(roundId, baseCid, baseDigest, deadline, minUpdates, maxUpdates, configCid);
    }

    function submitUpdate(
        uint256 roundId,
        string calldata updateCid,
        bytes32 digest,
        uint64 numSamples
    ) external whenNotPaused {
        if (!isClient[msg.sender]) revert NotClient(msg.sender);
        Round storage r = _openRound(roundId);
        if (block.timestamp > r.deadline) revert DeadlinePassed(roundId, r.deadline);
        Update storage u = _updates[roundId][msg.sender];
        if (u.submitted) revert AlreadySubmitted(roundId, msg.sender);
        uint32 count = r.numUpdates;
        if (count >= r.maxUpdates) revert RoundFull(roundId, r.maxUpdates);
        _checkCid(updateCid);
        if (digest == bytes32(0)) revert EmptyDigest();
        if (numSamples == 0) revert ZeroSamples();

        r.numUpdates = count + 1;
        u.digest = digest;
        u.numSamples = numSamples;
        u.submitted = true;
        emit UpdateSubmitted(roundId, msg.sender, updateCid, digest, numSamples);
    }

    function closeRound(
        uint256 roundId,
        string calldata modelCid,
        bytes32 modelDigest,
        string calldata manifestCid
    ) external onlyOrg whenNotPaused {
        Round storage r = _openRound(roundId);
        uint32 count = r.numUpdates;
        if (block.timestamp <= r.deadline && count < r.maxUpdates) {
            revert TooEarly(roundId, r.deadline);
        }
        if (count < r.minUpdates) revert NotEnoughUpdates(roundId, count, r.minUpdates);
        _checkCid(modelCid);
        _checkCid(manifestCid);
        if (modelDigest == bytes32(0)) revert EmptyDigest();

        r.status = RoundStatus.Closed;
        r.modelDigest = modelDigest;
        r.modelCid = modelCid;
        r.manifestCid = manifestCid;
        emit RoundClosed(roundId, modelCid, modelDigest, manifestCid, count);
    }

    /// @notice Anyone may fail a round whose deadline passed with too few updates.
    function failRound(uint256 roundId) external whenNotPaused {
        Round storage r = _openRound(roundId);
        if (block.timestamp <= r.deadline) revert TooEarly(roundId, r.deadline);
        uint32 count = r.numUpdates;
        if (count >= r.minUpdates) revert EnoughUpdates(roundId, count, r.minUpdates);
        r.status = RoundStatus.Failed;
        emit RoundFailed(roundId, count);
    }

    function _openRound(uint256 roundId) private view returns (Round storage r) {
        r = _rounds[roundId];
        if (r.status != RoundStatus.Open) revert RoundNotOpen(roundId);
    }

    function _checkCid(string calldata cid) private pure {
        uint256 length = bytes(cid).length;
        if (length == 0) revert EmptyCid();
        if (length > MAX_CID_LENGTH) revert CidTooLong(length, MAX_CID_LENGTH);
    }

    // ----- pause and org transfer -----

    function pause() external onlyOrg {
        if (paused) revert ContractPaused();
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyOrg {
        if (!paused) revert NotPaused();
        paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Step one of two: name the next org; it must call acceptOrg.
    function transferOrg(address newOrg) external onlyOrg {
        if (newOrg == address(0)) revert ZeroAddress();
        pendingOrg = newOrg;
        emit OrgTransferStarted(msg.sender, newOrg);
    }

    function acceptOrg() external {
        if (msg.sender != pendingOrg) revert NotPendingOrg(msg.sender);
        address previous = org;
        org = msg.sender;
        pendingOrg = address(0);
        emit OrgTransferred(previous, msg.sender);
    }

    // ----- views -----

    function getRound(uint256 roundId) external view returns (Round memory) {
        if (roundId == 0 || roundId > currentRoundId) revert UnknownRound(roundId);
        return _rounds[roundId];
    }

    function hasSubmitted(uint256 roundId, address client) external view returns (bool) {
        return _updates[roundId][client].submitted;
    }

    function getUpdate(uint256 roundId, address client) external view returns (Update memory) {
        return _updates[roundId][client];
    }
}
