// SPDX-License-Identifier: MIT
// harness/scheduler.hpp: a deterministic scheduler. Real threads, but only
// one runs at a time; at every scheduling point (vmap/sched_point.hpp) the
// running thread asks which thread runs next, and the answer comes from the
// fuzz input (then from a seeded generator once the input is used up). The
// same input always gives the same interleaving.
//
// Decision k is a pure function of k and the set of runnable threads:
// choice(k) is input[k], or splitmix64(seed + k) past the input's end; bit 0
// keeps the running thread, bits 1-7 pick the ((c >> 1) % n)-th runnable one.
// So no thread keeps state another reads, apart from atomics: the scheduler
// adds no data race of its own, and TSan judges the allocator alone.
//
// Grace periods end when the input says: a decision with bit 7 set also runs,
// on the running thread before it hands off, every RCU callback that is ready
// (rcu::poll(): no reader that could still hold its object is inside). With
// the harness's poll batch of 1 a callback may so run at any scheduling point
// after its last reader left, as in the kernel, not only once 64 piled up.
//
// TSan must not see the hand-off as synchronisation, or it would order
// every access of one thread before the next thread's and hide the
// allocator's races. The hand-off is real acquire/release (so the program is
// correct), but wrapped in AnnotateIgnoreSyncBegin/End under TSan.
//
// A thread that finds a spinlock held is not runnable until some thread
// releases that lock (matched by address: the scheduler never reads the
// allocator's memory, which would race with threads it has no
// happens-before with); if no thread is runnable, that is a deadlock,
// reported with every thread's position.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <vmap/rcu.hpp>
#include <vmap/sched_point.hpp>
#include <vmap/spinlock.hpp>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HARNESS_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define HARNESS_TSAN 1
#endif

#ifdef HARNESS_TSAN
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#define HARNESS_IGNORE_SYNC_BEGIN() AnnotateIgnoreSyncBegin(__FILE__, __LINE__)
#define HARNESS_IGNORE_SYNC_END() AnnotateIgnoreSyncEnd(__FILE__, __LINE__)
#define HARNESS_IGNORE_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define HARNESS_IGNORE_READS_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define HARNESS_IGNORE_SYNC_BEGIN() ((void)0)
#define HARNESS_IGNORE_SYNC_END() ((void)0)
#define HARNESS_IGNORE_READS_BEGIN() ((void)0)
#define HARNESS_IGNORE_READS_END() ((void)0)
#endif

namespace harness {

// A look at the allocator's state from a managed thread that neither TSan
// nor the schedule may notice: no scheduling decision is taken inside (the
// thread's hook is off), TSan ignores its synchronisation and its reads (so
// the look adds no happens-before edge between threads and reports no race
// of its own), and only this thread runs, so nothing changes under it. The
// look must only read, and must not free anything.
class unobserved_look {
  public:
    unobserved_look() : saved_(vmap::detail::sched_hook) {
        vmap::set_sched_hook(nullptr);
        HARNESS_IGNORE_SYNC_BEGIN();
        HARNESS_IGNORE_READS_BEGIN();
    }
    ~unobserved_look() {
        HARNESS_IGNORE_READS_END();
        HARNESS_IGNORE_SYNC_END();
        vmap::set_sched_hook(saved_);
    }
    unobserved_look(const unobserved_look&) = delete;
    unobserved_look& operator=(const unobserved_look&) = delete;

  private:
    vmap::sched_hook_fn saved_;
};

class det_scheduler {
  public:
    static constexpr unsigned max_threads = 8;
    static constexpr std::size_t max_decisions = 1u << 21; // livelock guard

    det_scheduler(std::span<const std::uint8_t> choices, std::uint64_t seed)
        : choices_(choices), seed_(seed) {}

    // Runs bodies[i] on thread i, one at a time. Returns when all are done.
    void run(std::vector<std::function<void()>> bodies) {
        n_ = static_cast<unsigned>(bodies.size());
        if (n_ == 0 || n_ > max_threads)
            std::abort();
        std::vector<std::thread> threads;
        for (unsigned i = 0; i < n_; ++i)
            threads.emplace_back([this, i, body = std::move(bodies[i])] {
                vmap::rcu::register_thread(); // never block in the registry later
                self_ = i;
                sched_ = this;
                wait_turn(i);
                vmap::set_sched_hook(&hook);
                body();
                vmap::set_sched_hook(nullptr);
                slots_[i].status.store(done, std::memory_order_relaxed);
                finish(i);
            });
        hand_to(choose(n_)); // n_: nobody is running yet
        for (std::thread& t : threads)
            t.join();
    }

    // Records progress for deadlock reports (the body calls it per op).
    static void at_op(unsigned op_index) {
        if (sched_)
            sched_->slots_[self_].op.store(op_index, std::memory_order_relaxed);
    }

    // The thread chosen at each decision, for as many decisions as fit.
    std::vector<std::uint8_t> trace() const {
        std::size_t n = std::min<std::size_t>(decisions_.load(), trace_cap);
        std::vector<std::uint8_t> t(n);
        for (std::size_t i = 0; i < n; ++i)
            t[i] = trace_[i].load(std::memory_order_relaxed);
        return t;
    }
    std::size_t decisions() const { return decisions_.load(std::memory_order_relaxed); }

  private:
    enum status_t : int { runnable, spinning, done };
    static constexpr std::size_t trace_cap = 1u << 16;
    static constexpr int nobody = -1, all_done = -2;

    struct slot {
        std::atomic<int> status{runnable};
        std::atomic<const void*> spinning_on{nullptr};
        std::atomic<const char*> lock_name{nullptr};
        std::atomic<unsigned> op{0};
        std::atomic<int> last_kind{-1};
    };

    static inline thread_local det_scheduler* sched_ = nullptr;
    static inline thread_local unsigned self_ = 0;

    static void hook(vmap::sched_kind kind, const void* object) {
        sched_->point(self_, kind, object);
    }

    void point(unsigned self, vmap::sched_kind kind, const void* object) {
        slot& s = slots_[self];
        s.last_kind.store(static_cast<int>(kind), std::memory_order_relaxed);
        if (kind == vmap::sched_kind::lock_spin) {
            // Our own thread found the lock held; its name is ours to read.
            s.spinning_on.store(object, std::memory_order_relaxed);
            s.lock_name.store(static_cast<const vmap::spinlock*>(object)->name(),
                              std::memory_order_relaxed);
            s.status.store(spinning, std::memory_order_relaxed);
        } else {
            s.status.store(runnable, std::memory_order_relaxed);
        }
        if (kind == vmap::sched_kind::lock_release)
            for (unsigned i = 0; i < n_; ++i)
                if (slots_[i].status.load(std::memory_order_relaxed) == spinning &&
                    slots_[i].spinning_on.load(std::memory_order_relaxed) == object)
                    slots_[i].status.store(runnable, std::memory_order_relaxed);
        bool end_grace = false;
        unsigned next = choose(self, &end_grace);
        if (end_grace)
            vmap::rcu::poll();
        if (next == self)
            return;
        hand_to(next);
        wait_turn(self);
    }

    // Runnable: not done, and not waiting for a lock nobody has released
    // since. (A woken thread may find the lock taken again; it just spins
    // once more.)
    bool can_run(unsigned i) const {
        return slots_[i].status.load(std::memory_order_relaxed) == runnable;
    }

    std::uint8_t choice(std::size_t k) const {
        if (k < choices_.size())
            return choices_[k];
        std::uint64_t z = seed_ + 0x9e3779b97f4a7c15ULL * (k + 1); // splitmix64
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return static_cast<std::uint8_t>(z ^ (z >> 31));
    }

    // The next thread to run; `self` (or n_ at the start) is the caller.
    // *end_grace: whether the caller runs the ready RCU callbacks first.
    unsigned choose(unsigned self, bool* end_grace = nullptr) {
        unsigned runnable_ids[max_threads];
        unsigned n = 0;
        for (unsigned i = 0; i < n_; ++i)
            if (can_run(i))
                runnable_ids[n++] = i;
        if (n == 0)
            deadlock();
        std::size_t k = decisions_.fetch_add(1, std::memory_order_relaxed);
        if (k >= max_decisions) {
            std::fprintf(stderr, "det_scheduler: %zu decisions without finishing (livelock?)\n", k);
            report_positions();
            std::abort();
        }
        // Half of the choices keep the current thread: fewer hand-offs, and
        // long runs of one thread still happen.
        std::uint8_t c = choice(k);
        if (end_grace)
            *end_grace = (c & 0x80) != 0;
        unsigned next = runnable_ids[(c >> 1) % n];
        if ((c & 1) == 0 && self < n_ && can_run(self))
            next = self;
        if (k < trace_cap)
            trace_[k].store(static_cast<std::uint8_t>(next), std::memory_order_relaxed);
        return next;
    }

    void finish(unsigned self) {
        bool anyone = false;
        for (unsigned i = 0; i < n_; ++i)
            anyone |= slots_[i].status.load(std::memory_order_relaxed) != done;
        if (!anyone) {
            hand_to_raw(all_done);
            return;
        }
        hand_to(choose(self));
    }

    void hand_to(unsigned next) { hand_to_raw(static_cast<int>(next)); }
    void hand_to_raw(int next) {
        HARNESS_IGNORE_SYNC_BEGIN();
        turn_.store(next, std::memory_order_release);
        turn_.notify_all();
        HARNESS_IGNORE_SYNC_END();
    }

    void wait_turn(unsigned self) {
        HARNESS_IGNORE_SYNC_BEGIN();
        for (;;) {
            int t = turn_.load(std::memory_order_acquire);
            if (t == static_cast<int>(self))
                break;
            turn_.wait(t, std::memory_order_acquire);
        }
        HARNESS_IGNORE_SYNC_END();
    }

    void report_positions() const {
        static constexpr const char* kinds[] = {
            "lock_acquire", "lock_spin", "lock_release", "rcu_enter",      "rcu_exit", "rcu_wait",
            "precheck",     "publish",   "rcu_torture",  "vb_free_window", "may_sleep"};
        for (unsigned i = 0; i < n_; ++i) {
            const slot& s = slots_[i];
            int st = s.status.load();
            int k = s.last_kind.load();
            const char* l = s.lock_name.load();
            std::fprintf(stderr, "  thread %u: op #%u, %s at %s%s%s\n", i, s.op.load(),
                         st == done       ? "done"
                         : st == spinning ? "spinning"
                                          : "runnable",
                         k < 0 ? "start" : kinds[k], st == spinning ? " on " : "",
                         st == spinning && l ? l : "");
        }
    }

    [[noreturn]] void deadlock() const {
        std::fprintf(stderr, "det_scheduler: deadlock: no thread can run\n");
        report_positions();
        std::fflush(stderr);
        std::abort();
    }

    std::span<const std::uint8_t> choices_;
    std::uint64_t seed_;
    unsigned n_ = 0;
    slot slots_[max_threads];
    std::atomic<int> turn_{nobody};
    std::atomic<std::size_t> decisions_{0};
    std::atomic<std::uint8_t> trace_[trace_cap] = {};
};

} // namespace harness
