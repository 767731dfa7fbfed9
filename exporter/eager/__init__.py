"""The eager model: where it comes from (sources, weights), how it is built and rebuilt, what it takes."""
