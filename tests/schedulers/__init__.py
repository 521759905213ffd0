"""Tests of the frontier-schedulers distribution: replica schedulers and routers."""
