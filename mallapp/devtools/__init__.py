"""Developer tooling: throwaway real servers for tests and benchmarks."""
