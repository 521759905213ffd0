"""Replica schedulers and cluster routers for Frontier.

Replica schedulers, each reproducing one engine's rules (the module docstring
names the engine version): ``vllm_v1`` (:mod:`.vllm_v1`), ``vllm`` for vLLM v0
(:mod:`.vllm_v0`), ``sglang`` (:mod:`.sglang`, with its radix cache in
:mod:`.radix_cache`), ``sarathi`` (:mod:`.sarathi`) and ``orca`` (:mod:`.orca`).
Cluster routers (:mod:`.routers`): ``round_robin``, ``least_outstanding``,
``random`` and ``prefix_aware``. All register through :mod:`.plugin`.
"""
