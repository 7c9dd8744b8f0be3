"""Helpers of the test suite (servers, worker processes, waiting, ledgers); no tests here."""
