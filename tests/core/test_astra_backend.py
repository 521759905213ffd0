"""The ``astra_analytical`` CC backend: hierarchical collectives over ring,
fully-connected and switch dimensions, worked by hand."""

from __future__ import annotations

import pytest
from conftest import simulate, tiny_config
from frontier.config import ParallelConfig
from frontier.devices import load_device
from frontier.models import load_model
from frontier.plugins import ExecutionContext
from frontier_backends.astra import (
    AstraAnalyticalBackend,
    AstraAnalyticalConfig,
    Dimension,
)


def _backend(dimensions=None, tp=8, pp=1, device="h100-sxm"):
    context = ExecutionContext(
        model=load_model("llama-2-7b"),
        device=load_device(device),
        parallel=ParallelConfig(tensor_parallel_size=tp, pipeline_parallel_size=pp),
        dtype="bfloat16",
        kv_cache_dtype="bfloat16",
    )
    return AstraAnalyticalBackend(AstraAnalyticalConfig(dimensions=dimensions), context)


def test_the_default_node_is_a_switch_of_the_devices_links():
    """H100: 8 GPUs on a switch of 450 GB/s links, 3 us a step. All-reduce of
    64 MiB over TP 8 = reduce-scatter + all-gather, each recursive halving:
    log2(8) x 3e-6 + 7 x (67,108,864 / 8) / 450e9 = 9e-6 + 1.3049e-4 s."""
    backend = _backend()
    scatter = 3 * 3e-6 + 7 * (67_108_864 / 8) / 450e9  # 1.39489e-4 s
    assert backend.reduce_scatter_s(67_108_864, 8) == pytest.approx(scatter)
    assert backend.all_gather_s(67_108_864, 8) == pytest.approx(scatter)
    assert backend.all_reduce_s(67_108_864, 8) == pytest.approx(2 * scatter)
    assert backend.all_reduce_s(67_108_864, 1) == 0.0


def test_a_ring_takes_n_minus_1_steps_of_a_chunk():
    """4 ranks on a ring of 100 GB/s, 1 us a step, 1 MB: 3 x (1e-6 + 250,000 /
    1e11) = 1.05e-5 s to reduce-scatter."""
    ring = [Dimension(topology="ring", npus=4, bandwidth_gbps=100, latency_ns=1000)]
    backend = _backend(ring, tp=4)
    assert backend.reduce_scatter_s(1e6, 4) == pytest.approx(1.05e-5)
    assert backend.all_reduce_s(1e6, 4) == pytest.approx(2.1e-5)
    # all-to-all on a one-direction ring: the chunk for the rank d hops away
    # crosses d links, so each link carries 3 x 4 / 2 = 6 chunks of 250,000 B:
    # 3 x 1e-6 + 6 x 2.5e-6 = 1.8e-5 s
    assert backend.all_to_all_s(1e6, 4) == pytest.approx(1.8e-5)


def test_a_fully_connected_dimension_sends_every_chunk_at_once():
    """4 ranks, 50 GB/s per link, 2 us: 2e-6 + (4e6 / 4) / 5e10 = 2.2e-5 s."""
    mesh = [
        Dimension(
            topology="fully_connected", npus=4, bandwidth_gbps=50, latency_ns=2000
        )
    ]
    assert _backend(mesh, tp=4).reduce_scatter_s(4e6, 4) == pytest.approx(2.2e-5)


def test_a_group_across_dimensions_runs_one_after_the_other():
    """8 ranks over a 2-GPU ring (100 GB/s) and a 4-node switch (10 GB/s), no
    latency, 8 MB: the ring reduce-scatters 8e6 (1 x 4e6 / 1e11 = 4e-5 s), leaving
    4e6 a rank; the switch reduce-scatters that over 4 (3 x 1e6 / 1e10 = 3e-4 s)."""
    dims = [
        Dimension(topology="ring", npus=2, bandwidth_gbps=100, latency_ns=0),
        Dimension(topology="switch", npus=4, bandwidth_gbps=10, latency_ns=0),
    ]
    assert _backend(dims, tp=8).reduce_scatter_s(8e6, 8) == pytest.approx(3.4e-4)


def test_send_recv_takes_the_dimension_the_stages_differ_in():
    """TP 8 x PP 2 on H100 nodes of 8: stage 0's last GPU (7) and stage 1's first
    (8) sit on different nodes: 8 us + 1 MB / 50 GB/s = 2.8e-5 s. TP 4 x PP 2:
    GPUs 3 and 4 share a node: 3 us + 1 MB / 450 GB/s = 5.222e-6 s."""
    assert _backend(tp=8, pp=2).send_recv_s(1e6, 0) == pytest.approx(2.8e-5)
    assert _backend(tp=4, pp=2).send_recv_s(1e6, 0) == pytest.approx(3e-6 + 1e6 / 450e9)


def test_an_amd_node_is_fully_connected_with_its_bandwidth_split_over_links():
    """MI300X: 8 GPUs, each link a seventh of the intra-node figure."""
    backend = _backend(device="mi300x")
    device = load_device("mi300x")
    link = device.intra_node_bandwidth_gbps / 7 * 1e9
    alpha = device.intra_node_latency_us * 1e-6
    # fully connected: one step of 8e6 / 8 bytes on one link
    assert backend.reduce_scatter_s(8e6, 8) == pytest.approx(alpha + 1e6 / link)


def test_a_run_with_the_backend_from_a_config(tmp_path):
    """Chosen and configured like any plugin; TP 2 runs to the end."""
    data = tiny_config(
        [(0.0, 64, 4)],
        parallel={"tensor_parallel_size": 2},
        cc_backend={
            "type": "astra_analytical",
            "dimensions": [
                {"topology": "ring", "npus": 2, "bandwidth_gbps": 100, "latency_ns": 0}
            ],
        },
    )
    _, result = simulate(data)
    assert result.summary["requests"]["completed"] == 1
    assert result.summary["metadata"]["cc_backend"] == "astra_analytical"


def test_an_expert_parallel_group_of_replicas_crosses_the_network():
    """Two TP-8 replicas fill two H100 nodes: their dispatch all-gather of 2 MB
    crosses the 50 GB/s network, 8 us + 1e6 / 5e10 = 2.8e-5 s (it was priced
    on NVSwitch, 5.3 us)."""
    backend = _backend(tp=8)
    assert backend.replicas_all_gather_s(2e6, 2, 8) == pytest.approx(2.8e-5)
    # replicas of 4 GPUs share a node: 3 us + 1e6 / 450e9 on the switch
    assert backend.replicas_all_gather_s(2e6, 2, 4) == pytest.approx(3e-6 + 1e6 / 450e9)


def test_a_switch_of_six_takes_three_latency_steps():
    """Recursive halving over 6 ranks needs ceil(log2 6) = 3 steps, not 2.585."""
    switch = [Dimension(topology="switch", npus=6, bandwidth_gbps=100, latency_ns=1000)]
    # 3 x 1e-6 + 5 x (6e6 / 6) / 1e11 = 3e-6 + 5e-5
    assert _backend(switch, tp=6, device="h100-sxm").reduce_scatter_s(
        6e6, 6
    ) == pytest.approx(5.3e-5)


def test_a_network_smaller_than_the_deployment_is_refused():
    """TP 8 x PP 4 needs 32 GPUs; 8 x 2 were stretched without a word."""
    from frontier.errors import ConfigError

    dims = [
        Dimension(topology="switch", npus=8, bandwidth_gbps=450, latency_ns=3000),
        Dimension(topology="switch", npus=2, bandwidth_gbps=50, latency_ns=8000),
    ]
    with pytest.raises(ConfigError, match=r"hold 16 GPUs .* span 32"):
        _backend(dims, tp=8, pp=4)


def test_an_empty_or_incomplete_network_is_refused():
    from frontier.config import FieldValueError

    with pytest.raises(FieldValueError, match="at least one dimension"):
        AstraAnalyticalConfig(dimensions=[])
    with pytest.raises(TypeError):
        Dimension(npus=8)  # the topology, bandwidth and latency are required
    with pytest.raises(FieldValueError, match=r"from 0\.001 to 1e"):
        Dimension(topology="ring", npus=2, bandwidth_gbps=1e-300, latency_ns=0)
