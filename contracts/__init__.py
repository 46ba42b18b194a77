"""fedchain contracts: FederatedRounds.sol, its compiled artifact and the async Python binding."""
