"""Requests' single progress counter and the aggregate features a batch keeps."""

from __future__ import annotations

from frontier.batch import Batch
from frontier.request import Outcome, Request


def test_new_request_has_its_prompt_to_compute():
    """A fresh request holds its prompt, nothing computed, outcome pending."""
    request = Request(3, 1.5, 100, 20)
    assert (request.num_tokens, request.num_computed_tokens) == (100, 0)
    assert request.num_new_tokens == 100
    assert request.is_prefill
    assert not request.is_finished
    assert request.outcome is Outcome.PENDING


def test_request_decodes_once_its_prompt_and_outputs_are_computed():
    """After prefill and one sampled token, one token is left to compute: decode."""
    request = Request(0, 0.0, 100, 20)
    request.num_computed_tokens = 100  # prefill done
    request.num_generated, request.num_tokens = 1, 101  # first token sampled
    assert request.num_new_tokens == 1
    assert not request.is_prefill


def test_request_is_finished_at_its_output_count():
    """A request is finished when it generated ``max_output_tokens`` tokens."""
    request = Request(0, 0.0, 10, 3)
    request.num_generated = 3
    assert request.is_finished


def test_preemption_drops_computed_kv_but_keeps_generated_tokens():
    """After a recompute preemption prompt and outputs are prefilled again."""
    request = Request(0, 0.0, 100, 20)
    request.num_computed_tokens, request.num_generated, request.num_tokens = 104, 5, 105
    request.preempt()
    assert request.num_computed_tokens == 0
    assert request.num_new_tokens == 105  # 100 prompt + 5 generated
    assert request.num_preemptions == 1
    assert request.is_prefill


def test_batch_keeps_prefill_chunks_and_decode_contexts():
    """A batch of a fresh prefill, a later chunk and a decode: hand-added features."""
    fresh = Request(0, 0.0, 100, 5)  # computes 100 from 0
    chunked = Request(1, 0.0, 200, 5)
    chunked.num_computed_tokens = 64  # its second chunk of 32 attends to 64
    decoding = Request(2, 0.0, 40, 5)
    decoding.num_computed_tokens, decoding.num_generated, decoding.num_tokens = (
        50,
        11,
        51,
    )

    batch = Batch()
    batch.add(fresh, 100)
    batch.add(chunked, 32)
    batch.add(decoding, 1)

    assert batch.num_tokens == 133  # 100 + 32 + 1
    assert batch.prefill_lengths == [100, 32]
    assert batch.prefill_contexts == [0, 64]
    assert batch.num_decodes == 1
    assert batch.decode_context_sum == 51  # 50 computed + the new one
    assert batch.num_prefill_tokens == 132  # 133 - 1 decode
    assert len(batch) == batch.num_requests == 3


def test_one_token_prefill_of_a_new_request_is_not_a_decode():
    """A 1-token prompt is still a prefill: no token was generated yet."""
    batch = Batch()
    batch.add(Request(0, 0.0, 1, 5), 1)
    assert batch.num_decodes == 0
    assert batch.prefill_lengths == [1]


def test_first_decode_formed_before_the_first_token_is_a_decode():
    """Asynchronous scheduling forms the step after a prefill before the first
    token is out: one token past a computed prompt is a decode all the same."""
    request = Request(0, 0.0, 300, 5)
    request.num_computed_tokens = 300  # prefill launched
    request.num_tokens = 301  # the first token's placeholder; none generated yet
    batch = Batch()
    batch.add(request, 1)
    assert batch.num_decodes == 1
    assert batch.prefill_lengths == []
    assert batch.decode_context_sum == 301  # 300 computed + the new one


def test_last_chunk_of_one_token_is_a_prefill():
    """One prompt token still to compute is a prefill chunk, not a decode."""
    request = Request(0, 0.0, 300, 5)
    request.num_computed_tokens = 299
    batch = Batch()
    batch.add(request, 1)
    assert batch.num_decodes == 0
    assert batch.prefill_lengths == [1]
    assert batch.prefill_contexts == [299]
