// SPDX-License-Identifier: MIT
// harness/xa_ops.hpp: xarray-level operations (fuzz/xarray_ops, the xarray
// properties) and the oracle they are checked against.
//
// Encoding: op := opcode key
//   opcode % 4: 0 insert, 1 erase, 2 load, 3 insert-or-erase (toggle)
//   opcode / 4 % 4 picks the key width: 1 byte (< 64: height 1),
//   2 bytes (< 4096), 3 bytes (< 2^24: block indices of 32 TiB), 8 bytes
//   (anything, va_start keys included: height up to 11).
// Every 16th op also walks the whole tree with for_each.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <vmap/xarray.hpp>

#include "ops.hpp"

namespace harness {

enum class xa_op_kind : std::uint8_t { insert, erase, load, toggle };

struct xa_op {
    xa_op_kind kind;
    std::uint64_t key;
};

inline std::vector<xa_op> decode_xa_ops(std::span<const std::uint8_t> input) {
    byte_reader r(input);
    std::vector<xa_op> ops;
    std::uint8_t c;
    while (r.take(c)) {
        static constexpr unsigned widths[] = {1, 2, 3, 8};
        unsigned w = widths[(c >> 2) & 3];
        std::uint64_t key = 0;
        for (unsigned i = 0; i < w; ++i) {
            std::uint8_t b;
            if (!r.take(b))
                return ops;
            key = key << 8 | b;
        }
        if (w == 1)
            key &= 63;
        ops.push_back({static_cast<xa_op_kind>(c & 3), key});
    }
    return ops;
}

// The radix-tree formula: nodes of a minimal-height 64-way tree holding
// `keys` = sum over levels s = 0, 6, .., 6(h-1) of |{ key >> (s + 6) }|.
inline std::size_t xa_expected_nodes(const std::map<std::uint64_t, int>& keys) {
    if (keys.empty())
        return 0;
    unsigned h = vmap::xa_height_for(keys.rbegin()->first);
    std::size_t n = 0;
    for (unsigned level = 0; level < h; ++level) {
        unsigned shift = 6 * level + 6;
        std::uint64_t last = 0;
        bool first = true;
        for (auto& [k, v] : keys) { // keys are sorted: count distinct prefixes
            std::uint64_t p = shift >= 64 ? 0 : k >> shift;
            if (first || p != last)
                ++n;
            last = p;
            first = false;
        }
    }
    return n;
}

// Runs ops on a fresh xarray and an std::map; returns "" or what disagreed.
class xa_checker {
  public:
    struct item {
        alignas(8) std::uint64_t key;
    };

    std::string step(const xa_op& o, std::size_t index) {
        auto fail = [&](const std::string& what) {
            return "xarray op #" + std::to_string(index) + " key " + std::to_string(o.key) + ": " +
                   what;
        };
        xa_op_kind k = o.kind;
        if (k == xa_op_kind::toggle)
            k = oracle_.count(o.key) ? xa_op_kind::erase : xa_op_kind::insert;
        switch (k) {
        case xa_op_kind::insert: {
            auto it = items_.find(o.key);
            item* want = it == items_.end() ? nullptr : it->second.get();
            auto fresh = std::make_unique<item>(item{o.key});
            vmap::xa_insert_result r = xa_.insert(o.key, fresh.get());
            if (want && r != vmap::xa_insert_result::busy)
                return fail("insert over a used slot did not fail busy");
            if (!want) {
                if (r != vmap::xa_insert_result::ok)
                    return fail("insert into a free slot failed");
                oracle_[o.key] = 1;
                items_[o.key] = std::move(fresh);
            }
            break;
        }
        case xa_op_kind::erase: {
            auto it = items_.find(o.key);
            item* want = it == items_.end() ? nullptr : it->second.get();
            item* got = xa_.erase(o.key);
            if (got != want)
                return fail("erase returned the wrong entry");
            if (want) {
                oracle_.erase(o.key);
                items_.erase(it);
            }
            break;
        }
        case xa_op_kind::load:
        case xa_op_kind::toggle: {
            auto it = items_.find(o.key);
            if (xa_.load(o.key) != (it == items_.end() ? nullptr : it->second.get()))
                return fail("load disagrees with the map");
            break;
        }
        }
        std::uint64_t max_key = oracle_.empty() ? 0 : oracle_.rbegin()->first;
        unsigned h = oracle_.empty() ? 0 : vmap::xa_height_for(max_key);
        if (xa_.height() != h)
            return fail("height " + std::to_string(xa_.height()) + ", minimum is " +
                        std::to_string(h));
        std::size_t want_nodes = xa_expected_nodes(oracle_);
        if (xa_.nodes() != want_nodes)
            return fail("nodes " + std::to_string(xa_.nodes()) + ", radix-tree formula says " +
                        std::to_string(want_nodes));
        if (index % 16 == 15)
            return walk(index);
        return "";
    }

    std::string walk(std::size_t index) {
        auto it = oracle_.begin();
        std::string err;
        xa_.for_each([&](std::uint64_t key, item* e) {
            if (!err.empty())
                return;
            if (it == oracle_.end() || it->first != key || e != items_[key].get())
                err = "for_each at op #" + std::to_string(index) + " disagrees at key " +
                      std::to_string(key);
            else
                ++it;
        });
        if (err.empty() && it != oracle_.end())
            err = "for_each at op #" + std::to_string(index) + " missed key " +
                  std::to_string(it->first);
        std::vector<std::string> audit;
        xa_.audit(audit, "xarray");
        if (err.empty() && !audit.empty())
            err = audit.front();
        return err;
    }

    // Erases everything; the tree must end with no node.
    std::string finish() {
        while (!oracle_.empty()) {
            std::uint64_t k = oracle_.begin()->first;
            if (std::string e = step({xa_op_kind::erase, k}, 0); !e.empty())
                return e;
        }
        if (xa_.nodes() != 0 || xa_.height() != 0 || !xa_.empty())
            return "empty xarray keeps nodes";
        return "";
    }

    vmap::xarray<item>& xa() { return xa_; }

  private:
    std::map<std::uint64_t, int> oracle_;
    std::map<std::uint64_t, std::unique_ptr<item>> items_;
    vmap::xarray<item> xa_;
};

} // namespace harness
