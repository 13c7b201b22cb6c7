// SPDX-License-Identifier: MIT
// tests/test_xarray.cpp: vmap/xarray.hpp against a std::map model, with two
// independent oracles for its shape: the minimal height and the radix-tree
// node count. Also lock-free loads racing with a writer.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <bit>
#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <vmap/xarray.hpp>

#include "test_support.hpp"

namespace {

using vmap::xa_insert_result;

struct obj {
    std::uint64_t key = 0;
    int id = 0;
};
using xarray = vmap::xarray<obj>;

// Oracle 1: the least h with every key < 64^h (0 for no key or key 0 only).
unsigned minimal_height(std::uint64_t max_key) {
    unsigned h = 0;
    while (h * 6 < 64 && (max_key >> (h * 6)) != 0)
        ++h;
    return h;
}

std::uint64_t shr(std::uint64_t k, unsigned n) {
    return n >= 64 ? 0 : k >> n;
}

// Oracle 2: the radix-tree node count for a tree of minimal height,
//   sum over s = 0, 6, .., 6(h-1) of |{ k >> (s + 6) : k in keys }|.
std::size_t radix_nodes(const std::map<std::uint64_t, obj*>& model) {
    if (model.empty())
        return 0;
    unsigned h = minimal_height(model.rbegin()->first);
    std::size_t n = 0;
    for (unsigned level = 0; level < h; ++level) {
        std::set<std::uint64_t> prefixes;
        for (auto& [k, v] : model)
            prefixes.insert(shr(k, level * 6 + 6));
        n += prefixes.size();
    }
    return n;
}

// Oracle 2 kept up to date key by key (the random walks check it after every
// operation): per level, how many keys share each prefix k >> (s + 6).
class radix_counter {
  public:
    void add(std::uint64_t k) {
        for (unsigned level = 0; level < 11; ++level)
            ++prefixes_[level][shr(k, level * 6 + 6)];
    }
    void remove(std::uint64_t k) {
        for (unsigned level = 0; level < 11; ++level) {
            auto it = prefixes_[level].find(shr(k, level * 6 + 6));
            if (--it->second == 0)
                prefixes_[level].erase(it);
        }
    }
    std::size_t nodes(std::uint64_t max_key) const {
        std::size_t n = 0;
        for (unsigned level = 0; level < minimal_height(max_key); ++level)
            n += prefixes_[level].size();
        return n;
    }

  private:
    std::map<std::uint64_t, unsigned> prefixes_[11];
};

// The cheap part of expect_matches(), for every step.
void expect_shape(const xarray& xa, const std::map<std::uint64_t, obj*>& model,
                  const radix_counter& rc) {
    std::uint64_t max_key = model.empty() ? 0 : model.rbegin()->first;
    ASSERT_EQ(xa.height(), model.empty() ? 0u : minimal_height(max_key)) << "max key " << max_key;
    ASSERT_EQ(xa.nodes(), model.empty() ? 0u : rc.nodes(max_key));
    ASSERT_EQ(xa.empty(), model.empty());
}

std::vector<std::string> audit(const xarray& xa) {
    std::vector<std::string> out;
    xa.audit(out, "xa");
    return out;
}

// Everything observable about `xa` agrees with `model`.
void expect_matches(const xarray& xa, const std::map<std::uint64_t, obj*>& model) {
    std::uint64_t max_key = model.empty() ? 0 : model.rbegin()->first;
    unsigned want_h = model.empty() ? 0 : minimal_height(max_key);
    ASSERT_EQ(xa.height(), want_h) << "max key " << max_key;
    ASSERT_EQ(xa.height(), model.empty() ? 0u : vmap::xa_height_for(max_key));
    ASSERT_EQ(xa.nodes(), radix_nodes(model));
    ASSERT_EQ(xa.bytes(), xa.nodes() * xarray::node_bytes);
    ASSERT_EQ(xa.empty(), model.empty());
    std::vector<std::pair<std::uint64_t, obj*>> walked;
    xa.for_each([&](std::uint64_t k, obj* v) { walked.emplace_back(k, v); });
    ASSERT_EQ(walked, (std::vector<std::pair<std::uint64_t, obj*>>(model.begin(), model.end())));
    std::vector<std::string> problems = audit(xa);
    ASSERT_TRUE(problems.empty()) << problems.front();
}

TEST(XaHeight, Formula) {
    EXPECT_EQ(vmap::xa_height_for(0), 0u);
    EXPECT_EQ(vmap::xa_height_for(1), 1u);
    EXPECT_EQ(vmap::xa_height_for(63), 1u);
    EXPECT_EQ(vmap::xa_height_for(64), 2u);
    EXPECT_EQ(vmap::xa_height_for(4095), 2u);
    EXPECT_EQ(vmap::xa_height_for(4096), 3u);
    EXPECT_EQ(vmap::xa_height_for((1ULL << 23) - 1), 4u); // 32 TiB of 4 MiB blocks
    EXPECT_EQ(vmap::xa_height_for(0xffffc90000000000ULL), 11u);
    EXPECT_EQ(vmap::xa_height_for(~0ULL), 11u);
    for (std::uint64_t k : {0ULL, 1ULL, 63ULL, 64ULL, 1ULL << 35, 1ULL << 59, 1ULL << 60, ~0ULL})
        EXPECT_EQ(vmap::xa_height_for(k), minimal_height(k)) << k;
}

TEST(Xarray, EmptyTree) {
    xarray xa;
    EXPECT_TRUE(xa.empty());
    EXPECT_EQ(xa.height(), 0u);
    EXPECT_EQ(xa.nodes(), 0u);
    EXPECT_EQ(xa.load(0), nullptr);
    EXPECT_EQ(xa.load(12345), nullptr);
    EXPECT_EQ(xa.erase(0), nullptr);
    EXPECT_EQ(xa.erase(77), nullptr);
    EXPECT_TRUE(audit(xa).empty());
}

TEST(Xarray, KeyZeroAloneLivesInTheHead) {
    xarray xa;
    obj a, b;
    ASSERT_EQ(xa.insert(0, &a), xa_insert_result::ok);
    EXPECT_EQ(xa.height(), 0u);
    EXPECT_EQ(xa.nodes(), 0u);
    EXPECT_FALSE(xa.empty());
    EXPECT_EQ(xa.load(0), &a);
    EXPECT_EQ(xa.load(1), nullptr);
    EXPECT_EQ(xa.insert(0, &b), xa_insert_result::busy);
    EXPECT_EQ(xa.load(0), &a);
    // A second key grows the tree by one leaf; erasing it shrinks it back.
    ASSERT_EQ(xa.insert(1, &b), xa_insert_result::ok);
    EXPECT_EQ(xa.height(), 1u);
    EXPECT_EQ(xa.nodes(), 1u);
    EXPECT_EQ(xa.load(0), &a);
    EXPECT_EQ(xa.erase(1), &b);
    EXPECT_EQ(xa.height(), 0u);
    EXPECT_EQ(xa.nodes(), 0u);
    EXPECT_EQ(xa.load(0), &a);
    EXPECT_TRUE(audit(xa).empty());
    EXPECT_EQ(xa.erase(0), &a);
    EXPECT_TRUE(xa.empty());
}

TEST(Xarray, TheV3VaStartKeyNeedsElevenLevels) {
    xarray xa;
    obj a;
    const std::uint64_t key = 0xffffc90000000000ULL;
    ASSERT_EQ(xa.insert(key, &a), xa_insert_result::ok);
    EXPECT_EQ(xa.height(), 11u);
    EXPECT_EQ(xa.nodes(), 11u);
    EXPECT_EQ(xa.load(key), &a);
    EXPECT_EQ(xa.load(key + 1), nullptr);
    EXPECT_EQ(xa.load(key - (1ULL << 22)), nullptr);
    EXPECT_TRUE(audit(xa).empty());
    EXPECT_EQ(xa.erase(key), &a);
    EXPECT_EQ(xa.height(), 0u);
    EXPECT_EQ(xa.nodes(), 0u);
}

TEST(Xarray, BlockIndexKeysOf32TiBNeedFourLevels) {
    xarray xa;
    obj a;
    ASSERT_EQ(xa.insert((1ULL << 23) - 1, &a), xa_insert_result::ok);
    EXPECT_EQ(xa.height(), 4u);
    EXPECT_EQ(xa.nodes(), 4u);
    xa.erase((1ULL << 23) - 1);
}

TEST(Xarray, ZeroAndAllOnes) {
    xarray xa;
    obj a, b;
    std::map<std::uint64_t, obj*> model{{0, &a}, {~0ULL, &b}};
    ASSERT_EQ(xa.insert(~0ULL, &b), xa_insert_result::ok);
    ASSERT_EQ(xa.insert(0, &a), xa_insert_result::ok);
    expect_matches(xa, model);
    EXPECT_EQ(xa.nodes(), 21u); // two 10-level paths below one shared root
    EXPECT_EQ(xa.erase(~0ULL), &b);
    EXPECT_EQ(xa.height(), 0u);
    EXPECT_EQ(xa.load(0), &a);
    EXPECT_EQ(xa.erase(0), &a);
}

TEST(Xarray, InsertBusyKeepsTheOldEntryAndEraseReturnsIt) {
    xarray xa;
    obj a, b;
    ASSERT_EQ(xa.insert(4096, &a), xa_insert_result::ok);
    EXPECT_EQ(xa.insert(4096, &b), xa_insert_result::busy);
    EXPECT_EQ(xa.load(4096), &a);
    EXPECT_EQ(xa.erase(4095), nullptr);
    EXPECT_EQ(xa.erase(4096), &a);
    EXPECT_EQ(xa.erase(4096), nullptr);
    EXPECT_EQ(xa.load(4096), nullptr);
    EXPECT_TRUE(xa.empty());
    EXPECT_EQ(xa.nodes(), 0u);
}

TEST(XarrayDeathTest, InsertOfNullIsFatal) {
    xarray xa;
    EXPECT_DEATH(xa.insert(5, nullptr), "xa_insert of a null entry");
}

struct key_space {
    const char* name;
    std::uint64_t (*draw)(std::mt19937_64&);
};

std::uint64_t small_keys(std::mt19937_64& r) {
    return r() % 200;
}
std::uint64_t medium_keys(std::mt19937_64& r) {
    return r() % 20000;
}
std::uint64_t sparse_keys(std::mt19937_64& r) {
    // A few bits set anywhere, so heights from 1 to 11 all occur.
    unsigned bits = static_cast<unsigned>(r() % 64);
    return (r() & 0xff) << bits;
}
std::uint64_t edge_keys(std::mt19937_64& r) {
    static const std::uint64_t keys[] = {0,          1,          63,         64,
                                         65,         4095,       4096,       262143,
                                         262144,     1ULL << 23, 1ULL << 36, (1ULL << 60) - 1,
                                         1ULL << 60, ~0ULL - 1,  ~0ULL,      0xffffc90000000000ULL,
                                         1ULL << 63};
    return keys[r() % std::size(keys)];
}

void PrintTo(const key_space& k, std::ostream* os) {
    *os << k.name;
}

class XarrayRandom : public testing::TestWithParam<key_space> {};

TEST_P(XarrayRandom, MatchesAMapAndKeepsMinimalShape) {
    const std::uint64_t seed = vmap_test::seed_or(0x5eed0001);
    SCOPED_TRACE(vmap_test::seed_note(seed));
    std::mt19937_64 rng(seed);
    std::vector<obj> objs(4096);
    for (std::size_t i = 0; i < objs.size(); ++i)
        objs[i].id = static_cast<int>(i);

    xarray xa;
    std::map<std::uint64_t, obj*> model;
    radix_counter rc;
    for (int step = 0; step < 2000; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        std::uint64_t k = GetParam().draw(rng);
        unsigned op = static_cast<unsigned>(rng() % 10);
        if (op < 5) { // insert
            obj* e = &objs[rng() % objs.size()];
            xa_insert_result r = xa.insert(k, e);
            if (model.count(k)) {
                ASSERT_EQ(r, xa_insert_result::busy);
            } else {
                ASSERT_EQ(r, xa_insert_result::ok);
                model[k] = e;
                rc.add(k);
            }
        } else if (op < 8) { // erase, of a present key half of the time
            if (!model.empty() && rng() % 2) {
                auto it = model.begin();
                std::advance(it, static_cast<long>(rng() % model.size()));
                k = it->first;
            }
            obj* want = model.count(k) ? model[k] : nullptr;
            ASSERT_EQ(xa.erase(k), want);
            if (want)
                rc.remove(k);
            model.erase(k);
        } else { // load
            auto it = model.find(k);
            ASSERT_EQ(xa.load(k), it == model.end() ? nullptr : it->second);
        }
        // A neighbour of k, present or not, loads as the model says.
        for (std::uint64_t n : {k - 1, k + 1, k ^ 64}) {
            auto it = model.find(n);
            ASSERT_EQ(xa.load(n), it == model.end() ? nullptr : it->second) << "key " << n;
        }
        ASSERT_NO_FATAL_FAILURE(expect_shape(xa, model, rc));
        if (step % 16 == 0) {
            ASSERT_NO_FATAL_FAILURE(expect_matches(xa, model));
        }
    }
    ASSERT_NO_FATAL_FAILURE(expect_matches(xa, model));
    // Erasing everything frees every node.
    for (int step = 0; !model.empty(); ++step) {
        auto it = model.begin();
        std::advance(it, static_cast<long>(rng() % model.size()));
        ASSERT_EQ(xa.erase(it->first), it->second);
        rc.remove(it->first);
        model.erase(it);
        ASSERT_NO_FATAL_FAILURE(expect_shape(xa, model, rc));
        if (step % 16 == 0) {
            ASSERT_NO_FATAL_FAILURE(expect_matches(xa, model));
        }
    }
    EXPECT_EQ(xa.nodes(), 0u);
    EXPECT_EQ(xa.height(), 0u);
    EXPECT_TRUE(xa.empty());
}

INSTANTIATE_TEST_SUITE_P(
    KeySpaces, XarrayRandom,
    testing::Values(key_space{"small", small_keys}, key_space{"medium", medium_keys},
                    key_space{"sparse", sparse_keys}, key_space{"edge", edge_keys}),
    [](const testing::TestParamInfo<key_space>& i) { return std::string(i.param.name); });

// Readers load and walk without any lock while a writer inserts and erases
// keys chosen to grow and shrink the tree through many heights. Each key has
// one object of its own, so any result other than null or that object (or a
// walk out of key order) is garbage. Erased nodes must outlive the readers.
TEST(XarrayConcurrent, LockFreeReadersSeeTheEntryOrNull) {
    const std::uint64_t seed = vmap_test::seed_or(0x5eed0002);
    SCOPED_TRACE(vmap_test::seed_note(seed));
    std::vector<std::uint64_t> keys = {0,          1,          2,          63,
                                       64,         65,         4095,       4096,
                                       262144,     262145,     1ULL << 30, (1ULL << 30) + 64,
                                       1ULL << 40, 1ULL << 50, 1ULL << 60, 0xffffc90000000000ULL,
                                       ~0ULL};
    std::vector<obj> objs(keys.size());
    std::map<std::uint64_t, obj*> owner;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        objs[i].key = keys[i];
        objs[i].id = static_cast<int>(i);
        owner[keys[i]] = &objs[i];
    }

    xarray xa;
    constexpr int readers = 2;
    std::atomic<bool> stop{false};
    std::atomic<long> bad{0}, loads{0}, hits{0};
    std::barrier start(readers + 1);
    std::vector<std::thread> ts;
    for (int r = 0; r < readers; ++r)
        ts.emplace_back([&, r] {
            std::mt19937_64 rr(seed + 1 + static_cast<std::uint64_t>(r));
            start.arrive_and_wait();
            long n = 0, h = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                for (int i = 0; i < 64; ++i) {
                    std::uint64_t k = keys[rr() % keys.size()];
                    obj* e = xa.load(k);
                    ++n;
                    if (e) {
                        ++h;
                        if (e != owner.at(k) || e->key != k)
                            bad.fetch_add(1);
                    }
                }
                std::uint64_t prev = 0;
                bool first = true;
                xa.for_each([&](std::uint64_t k, obj* e) {
                    auto it = owner.find(k);
                    if (it == owner.end() || it->second != e || e->key != k ||
                        (!first && k <= prev))
                        bad.fetch_add(1);
                    prev = k;
                    first = false;
                });
            }
            loads.fetch_add(n);
            hits.fetch_add(h);
        });

    std::mt19937_64 rng(seed);
    std::map<std::uint64_t, obj*> model;
    start.arrive_and_wait();
    long writer_errors = 0;
    for (int step = 0; step < 20000; ++step) {
        std::uint64_t k = keys[rng() % keys.size()];
        if (model.count(k)) {
            writer_errors += xa.erase(k) != owner[k];
            model.erase(k);
        } else {
            writer_errors += xa.insert(k, owner[k]) != xa_insert_result::ok;
            model[k] = owner[k];
        }
    }
    stop.store(true);
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(writer_errors, 0);
    EXPECT_EQ(bad.load(), 0);
    EXPECT_GT(loads.load(), 0);
    ASSERT_NO_FATAL_FAILURE(expect_matches(xa, model));
    for (auto& [k, v] : std::map<std::uint64_t, obj*>(model))
        xa.erase(k);
    EXPECT_EQ(xa.nodes(), 0u);
}

// insert() counts the nodes it needs without the lock, allocates them, then
// counts again under xa_lock. A scheduling hook changes the tree in between:
// the spares may fall short (retry with the lock dropped) or be too many
// (the rest freed; LeakSanitizer would see a lost one).
struct between_count_and_lock {
    static inline xarray* xa = nullptr;
    static inline void (*change)(xarray&) = nullptr;
    static void hook(vmap::sched_kind kind, const void*) {
        if (kind != vmap::sched_kind::lock_acquire || !change)
            return;
        auto f = change;
        change = nullptr; // once, and not for the change's own lock
        f(*xa);
    }
};

TEST(Xarray, InsertRecountsWhenTheTreeChangesBeforeItLocks) {
    struct scenario {
        const char* what;
        std::vector<std::uint64_t> before; // in the tree when insert() starts
        void (*change)(xarray&);           // done between its count and its lock
        std::uint64_t key;
    };
    static obj a, b, c;
    const scenario scenarios[] = {
        {"too few: the leaf it meant to share is erased", {64}, [](xarray& x) { x.erase(64); }, 65},
        {"too few: four levels vanish",
         {1ULL << 30},
         [](xarray& x) { x.erase(1ULL << 30); },
         (1ULL << 30) + 1},
        {"too many: another insert builds its path first",
         {},
         [](xarray& x) { x.insert(64, &b); },
         65},
        {"too many: the tree grows over it", {1}, [](xarray& x) { x.insert(1ULL << 40, &b); }, 2},
    };
    for (const scenario& sc : scenarios) {
        SCOPED_TRACE(sc.what);
        xarray xa;
        std::map<std::uint64_t, obj*> model;
        for (std::uint64_t k : sc.before) {
            ASSERT_EQ(xa.insert(k, &a), xa_insert_result::ok);
            model[k] = &a;
        }
        between_count_and_lock::xa = &xa;
        between_count_and_lock::change = sc.change;
        vmap::set_sched_hook(&between_count_and_lock::hook);
        xa_insert_result r = xa.insert(sc.key, &c);
        vmap::set_sched_hook(nullptr);
        ASSERT_EQ(between_count_and_lock::change, nullptr) << "the hook never ran";
        ASSERT_EQ(r, xa_insert_result::ok);
        model.clear();
        xa.for_each([&](std::uint64_t k, obj* e) { model[k] = e; });
        ASSERT_EQ(model.at(sc.key), &c);
        ASSERT_NO_FATAL_FAILURE(expect_matches(xa, model));
        for (auto& [k, v] : std::map<std::uint64_t, obj*>(model))
            xa.erase(k);
        EXPECT_EQ(xa.nodes(), 0u);
    }
}

TEST(Xarray, LockStatsCountWriters) {
    xarray xa("my xa_lock");
    obj a;
    EXPECT_STREQ(xa.lock().name(), "my xa_lock");
    xa.insert(3, &a);
    xa.erase(3);
    (void)xa.load(3); // lock-free
    EXPECT_EQ(xa.stats().acquisitions, 2u);
}

} // namespace
