"""The leaderboard's methods, one module each; every module here is imported by the registry."""
