import pytest

from llmkit.decode.block_pool import BlockPool, block_hashes
from llmkit.decode.kv_manager import KVCacheManager


def test_hashes_chain_so_equal_blocks_after_different_prefixes_differ():
    a = block_hashes([1, 2, 3, 4, 9, 9], 2)
    b = block_hashes([5, 6, 3, 4, 9], 2)
    assert len(a) == 3 and len(b) == 2
    assert a[1] != b[1]  # same tokens (3, 4), different prefix
    assert block_hashes([1, 2, 3, 4], 2) == a[:2]


def test_shared_blocks_are_reference_counted():
    pool = BlockPool(4)
    [block] = pool.allocate(1)
    pool.register(block, 123)
    assert pool.lookup([123]) == [block] and pool.ref_count[block] == 2
    pool.free([block])
    assert pool.num_free == 3  # still held by one user
    pool.free([block])
    assert pool.num_free == 4 and pool.lookup([123]) == [block]  # free but still cached


def test_least_recently_freed_cached_block_is_evicted_first():
    pool = BlockPool(2)
    first, second = pool.allocate(2)
    pool.register(first, 1)
    pool.register(second, 2)
    pool.free([first])
    pool.free([second])
    pool.allocate(1)  # takes `first`, the older free block
    assert pool.lookup([1]) == [] and pool.lookup([2]) == [second]


def test_over_allocation_is_an_error():
    with pytest.raises(RuntimeError, match="asked for 3 KV blocks with 2 free"):
        BlockPool(2).allocate(3)


def test_manager_grows_tables_and_reports_hit_rate():
    kv = KVCacheManager(num_blocks=8, block_size=4)
    tokens = list(range(10))
    assert kv.cached_prefix("a", tokens) == 0
    assert kv.allocate("a", 10) and len(kv.table("a")) == 3
    kv.register_full_blocks("a", tokens, 10)
    assert kv.cached_prefix("b", tokens) == 8  # two full blocks; the last token is always recomputed
    assert kv.stats.hit_rate == pytest.approx(8 / 20)
    assert not kv.allocate("c", 100) and kv.table("c") == []
