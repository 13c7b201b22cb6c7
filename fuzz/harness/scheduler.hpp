// SPDX-License-Identifier: MIT
// harness/scheduler.hpp: a deterministic scheduler. The simulated threads are
// fibers on the calling OS thread, one running at a time; at every scheduling
// point (vmap/sched_point.hpp) the running fiber asks which one goes next, and
// the answer comes from the fuzz input (then from a seeded generator once the
// input is used up). The same input always gives the same interleaving.
//
// Why fibers, not threads: in issue 18's profile (README) the real-thread
// hand-offs (futex wake, context switch, wake-up latency) and thread start
// and join were 41% of an execution under ASan, 28% under TSan; a fiber
// switch is a few instructions (harness_fiber_switch below, not swapcontext:
// that one makes a sigprocmask syscall and, under ASan, clears the shadow of
// the whole target stack at every switch). The fibers, their stacks and their sanitizer
// handles live as long as the OS thread and are reused by every run.
//
// Every fiber is a thread to the library and to the sanitizers:
//   - it runs its own vmap::task (vmap/current.hpp: RCU reader, spinlock
//     owner, bound CPU, scheduling hook, TLB log buffer), switched with it;
//   - it is a TSan fiber (__tsan_create_fiber): its own vector clock, so
//     TSan judges accesses of different fibers as it would different
//     threads'. Switches pass __tsan_switch_to_fiber's no-sync flag: a
//     switch is no happens-before edge, or TSan would order every access of
//     one fiber before the next one's and hide the allocator's races. The
//     edges real threads would have are made by hand, with atomics TSan
//     sees: run() releases, each fiber acquires when it starts (thread
//     creation), and each fiber releases when it ends, acquired by run()
//     (join);
//   - ASan learns each switch (__sanitizer_start/finish_switch_fiber), so
//     its stack bounds and the fiber's own fake stack (stack-use-after-
//     return) follow the running fiber.
//
// Decision k is a pure function of k and the set of runnable threads:
// choice(k) is input[k], or splitmix64(seed + k) past the input's end; bit 0
// keeps the running thread, bits 1-7 pick the ((c >> 1) % n)-th runnable one.
// What the scheduler shares between fibers is atomics (relaxed: no edge TSan
// would see), so it adds no data race of its own and TSan judges the
// allocator alone.
//
// A thread at a may_sleep point (new_vmap_block() after alloc_vmap_area())
// may migrate: a decision with bit 6 set rebinds its task to another
// possible CPU, as a thread that slept may wake elsewhere.
//
// Grace periods end when the input says: a decision with bit 7 set also runs,
// on the running thread before it hands off, every RCU callback that is ready
// (rcu::poll(): no reader that could still hold its object is inside). With
// the harness's poll batch of 1 a callback may so run at any scheduling point
// after its last reader left, as in the kernel, not only once 64 piled up.
//
// A thread that finds a spinlock held is not runnable until some thread
// releases that lock (matched by address: the scheduler never reads the
// allocator's memory, which would race with threads it has no
// happens-before with); if no thread is runnable, that is a deadlock,
// reported with every thread's position.
//
// Nothing may block the OS thread while a fiber holds something another
// fiber needs: the library's std::mutex sections (RCU registry and
// callbacks, TLB log registry) contain no scheduling point, so no fiber is
// switched out inside one. x86-64 only (the switch is hand-written).
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <vmap/current.hpp>
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
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARNESS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HARNESS_ASAN 1
#endif

#if !defined(__x86_64__)
#error "harness/scheduler.hpp: the fiber switch is written for x86-64 only"
#endif

#ifdef HARNESS_TSAN
// TSan's fiber interface (compiler-rt tsan_interface.h, in clang-14's runtime).
extern "C" void* __tsan_get_current_fiber(void);
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
extern "C" void __tsan_set_fiber_name(void* fiber, const char* name);
extern "C" void __tsan_ignore_thread_begin(void);
extern "C" void __tsan_ignore_thread_end(void);
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#define HARNESS_IGNORE_SYNC_BEGIN() AnnotateIgnoreSyncBegin(__FILE__, __LINE__)
#define HARNESS_IGNORE_SYNC_END() AnnotateIgnoreSyncEnd(__FILE__, __LINE__)
#define HARNESS_IGNORE_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define HARNESS_IGNORE_READS_END() AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#define HARNESS_IGNORE_ACCESSES_BEGIN() __tsan_ignore_thread_begin()
#define HARNESS_IGNORE_ACCESSES_END() __tsan_ignore_thread_end()
#else
#define HARNESS_IGNORE_ACCESSES_BEGIN() ((void)0)
#define HARNESS_IGNORE_ACCESSES_END() ((void)0)
#define HARNESS_IGNORE_SYNC_BEGIN() ((void)0)
#define HARNESS_IGNORE_SYNC_END() ((void)0)
#define HARNESS_IGNORE_READS_BEGIN() ((void)0)
#define HARNESS_IGNORE_READS_END() ((void)0)
#endif

#ifdef HARNESS_ASAN
// The sanitizers' fiber-switch interface (common_interface_defs.h).
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom,
                                               std::size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old,
                                                std::size_t* size_old);
#endif

// harness_fiber_switch(&save, load): saves the callee-saved registers and the
// SSE/x87 control words on the current stack, stores the stack pointer in
// *save, loads `load` and restores from there. A new fiber's stack is made to
// look switched out inside harness_fiber_trampoline, which calls r13(r12).
// One copy per link (a COMDAT group), though the header may be included by
// several translation units.
extern "C" void harness_fiber_switch(void** save, void* load);
extern "C" void harness_fiber_trampoline();
__asm__(".pushsection .text.harness_fiber_switch,\"axG\",@progbits,harness_fiber_switch,comdat\n"
        ".globl harness_fiber_switch\n"
        ".hidden harness_fiber_switch\n"
        ".type harness_fiber_switch,@function\n"
        "harness_fiber_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size harness_fiber_switch, .-harness_fiber_switch\n"
        ".globl harness_fiber_trampoline\n"
        ".hidden harness_fiber_trampoline\n"
        ".type harness_fiber_trampoline,@function\n"
        "harness_fiber_trampoline:\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        ".size harness_fiber_trampoline, .-harness_fiber_trampoline\n"
        ".popsection\n");

namespace harness {

// The checks after run() has joined every thread: only this one runs, and
// everything the others did happens before it, so no access made here can
// race. TSan skips the accesses (the final reads, audits and drain were
// about a tenth of vmap_threads' time under it, issue 18); it still sees
// the synchronisation, and ASan checks every access as before.
class quiescent_checks {
  public:
    quiescent_checks() { HARNESS_IGNORE_ACCESSES_BEGIN(); }
    ~quiescent_checks() { HARNESS_IGNORE_ACCESSES_END(); }
    quiescent_checks(const quiescent_checks&) = delete;
    quiescent_checks& operator=(const quiescent_checks&) = delete;
};

// A look at the allocator's state from a managed thread that neither TSan
// nor the schedule may notice: no scheduling decision is taken inside (the
// thread's hook is off), TSan ignores its synchronisation and its reads (so
// the look adds no happens-before edge between threads and reports no race
// of its own), and only this thread runs, so nothing changes under it. The
// look must only read, and must not free anything.
class unobserved_look {
  public:
    unobserved_look() : saved_(vmap::sched_hook()) {
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

    // Runs bodies[i] on fiber i, one at a time. Returns when all are done.
    // Where a thread may wake after a sched_kind::may_sleep point: the
    // possible CPUs (empty, the default: it never migrates).
    void set_migration_cpus(std::vector<unsigned> cpus) { cpus_ = std::move(cpus); }

    void run(std::vector<std::function<void()>> bodies) {
        n_ = static_cast<unsigned>(bodies.size());
        if (n_ == 0 || n_ > max_threads || running_sched_)
            std::abort();
        bodies_ = std::move(bodies);
        fibers& f = fibers::get();
        for (unsigned i = 0; i < n_; ++i)
            f.prepare(i, this);
        running_sched_ = this;
        started_.store(true, std::memory_order_release);   // "creates" the threads
        f.transfer(f.main(), f.at(choose(n_)));            // n_: nobody is running yet
        if (exited_.load(std::memory_order_acquire) != n_) // "joins" them
            std::abort();
        running_sched_ = nullptr;
    }

    // Records progress for deadlock reports (the body calls it per op).
    static void at_op(unsigned op_index) {
        if (det_scheduler* s = running_sched_)
            s->slots_[s->running_.load(std::memory_order_relaxed)].op.store(
                op_index, std::memory_order_relaxed);
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
    // Enough for the determinism test's input (746 decisions); every run
    // builds the array, and at 64 Ki atomics it was 15% of a TSan run.
    static constexpr std::size_t trace_cap = 1u << 12;

    struct slot {
        std::atomic<int> status{runnable};
        std::atomic<const void*> spinning_on{nullptr};
        std::atomic<const char*> lock_name{nullptr};
        std::atomic<unsigned> op{0};
        std::atomic<int> last_kind{-1};
    };

    // The OS thread's fibers and its own context, kept for the thread's
    // lifetime: stacks, TSan fibers, ASan fake stacks and vmap::tasks are
    // made once, not per run. A fiber is idle between runs, switched out at
    // the end of thread_main(), and resumes into the next run's scheduler.
    class fibers {
      public:
        struct context {
            void* sp = nullptr;                 // while switched out
            const void* stack_bottom = nullptr; // for ASan
            std::size_t stack_size = 0;
            void* tsan = nullptr;
            vmap::task* task = nullptr; // nullptr: the OS thread's own
        };

        static fibers& get() {
            static thread_local fibers f;
            return f;
        }

        context& main() { return main_; }
        context& at(unsigned i) { return fiber_[i]->ctx; }

        // Fiber i runs `s`'s thread i from its next resumption on.
        void prepare(unsigned i, det_scheduler* s) {
            if (!fiber_[i])
                fiber_[i] = std::make_unique<fiber>(i);
            fiber_[i]->sched.store(s, std::memory_order_relaxed);
#ifdef HARNESS_TSAN
            // Once: fibers read it after their exit, unordered with a later run.
            if (!main_.tsan)
                main_.tsan = __tsan_get_current_fiber();
#endif
        }

        // Switches from `from` (the running context) to `to`; returns when
        // something switches back to `from`. No happens-before edge unless
        // `sync` (only at the pool's teardown); `last`: `from` never runs
        // again (ASan frees its fake stack).
        void transfer(context& from, context& to, bool sync = false, bool last = false) {
            from_.store(&from, std::memory_order_relaxed);
            vmap::switch_to(to.task);
#ifdef HARNESS_TSAN
            __tsan_switch_to_fiber(to.tsan, sync ? 0 : 1); // 1: no synchronisation
#else
            (void)sync;
#endif
#ifdef HARNESS_ASAN
            void* fake_stack = nullptr;
            __sanitizer_start_switch_fiber(last ? nullptr : &fake_stack, to.stack_bottom,
                                           to.stack_size);
            harness_fiber_switch(&from.sp, to.sp);
            arrived(fake_stack);
#else
            (void)last;
            harness_fiber_switch(&from.sp, to.sp);
#endif
        }

        fibers() = default;
        fibers(const fibers&) = delete;
        fibers& operator=(const fibers&) = delete;
        // At the OS thread's exit: each fiber, idle since its last run, is
        // resumed once more to end (with a happens-before edge both ways,
        // as a join: what it read after its last run's exit must be ordered
        // before its stack and context are freed).
        // All end before any is freed: each read the others' contexts.
        ~fibers() {
            for (auto& f : fiber_)
                if (f) {
                    f->sched.store(nullptr, std::memory_order_relaxed);
                    transfer(main_, f->ctx, true);
                }
            for (auto& f : fiber_)
                f.reset();
        }

      private:
        static constexpr std::size_t stack_bytes = 1u << 20;
        static constexpr std::size_t guard_bytes = 1u << 12;

        struct fiber {
            context ctx;
            vmap::owned_task task;
            std::atomic<det_scheduler*> sched{nullptr};
            unsigned index;
            char* map = nullptr;

            explicit fiber(unsigned i) : index(i) {
                void* m = mmap(nullptr, stack_bytes + guard_bytes, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
                if (m == MAP_FAILED)
                    std::abort();
                map = static_cast<char*>(m);
                mprotect(map, guard_bytes, PROT_NONE); // overflow faults, not corrupts
                ctx.stack_bottom = map + guard_bytes;
                ctx.stack_size = stack_bytes;
                ctx.task = &task;
                // The frame harness_fiber_switch restores, from the top down:
                // return into the trampoline, rbp (0 ends frame-pointer
                // unwinding), rbx, r12 = this, r13 = entry, r14, r15, and the
                // default MXCSR and x87 control word.
                auto* sp = reinterpret_cast<std::uint64_t*>(map + guard_bytes + stack_bytes);
                *--sp = reinterpret_cast<std::uint64_t>(&harness_fiber_trampoline);
                *--sp = 0;
                *--sp = 0;
                *--sp = reinterpret_cast<std::uint64_t>(this);
                *--sp = reinterpret_cast<std::uint64_t>(&entry);
                *--sp = 0;
                *--sp = 0;
                *--sp = 0x1f80 | (std::uint64_t{0x037f} << 32);
                ctx.sp = sp;
#ifdef HARNESS_TSAN
                ctx.tsan = __tsan_create_fiber(0);
                static const char* const names[max_threads] = {
                    "vmap_threads thread 0", "vmap_threads thread 1", "vmap_threads thread 2",
                    "vmap_threads thread 3", "vmap_threads thread 4", "vmap_threads thread 5",
                    "vmap_threads thread 6", "vmap_threads thread 7"};
                __tsan_set_fiber_name(ctx.tsan, names[i]);
#endif
            }
            ~fiber() {
#ifdef HARNESS_TSAN
                __tsan_destroy_fiber(ctx.tsan);
#endif
                munmap(map, stack_bytes + guard_bytes);
            }
            fiber(const fiber&) = delete;
            fiber& operator=(const fiber&) = delete;

            [[noreturn]] static void entry(void* self) {
                fiber& f = *static_cast<fiber*>(self);
#ifdef HARNESS_ASAN
                get().arrived(nullptr); // a new fiber: no fake stack yet
#endif
                while (det_scheduler* s = f.sched.load(std::memory_order_relaxed))
                    s->thread_main(f.index);
                fibers& pool = get();
                pool.transfer(f.ctx, pool.main_, true, true);
                std::abort(); // nothing resumes an ended fiber
            }
        };

#ifdef HARNESS_ASAN
        // Completes a switch in the context that was switched to; learns the
        // bounds of the stack it came from (the OS thread's own, for main_).
        void arrived(void* fake_stack) {
            const void* bottom = nullptr;
            std::size_t size = 0;
            __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
            context* from = from_.load(std::memory_order_relaxed);
            from->stack_bottom = bottom;
            from->stack_size = size;
        }
#endif

        context main_;
        std::unique_ptr<fiber> fiber_[max_threads];
        std::atomic<context*> from_{nullptr};
    };

    // The scheduler whose run() is under way on this OS thread.
    static inline thread_local det_scheduler* running_sched_ = nullptr;

    static void hook(vmap::sched_kind kind, const void* object) {
        det_scheduler* s = running_sched_;
        s->point(s->running_.load(std::memory_order_relaxed), kind, object);
    }

    // Fiber `self`'s life in one run; ends switched out, idle until the
    // next run, so nothing after the last switch may touch *this.
    void thread_main(unsigned self) {
        if (!started_.load(std::memory_order_acquire))
            std::abort();
        vmap::rcu::register_thread(); // the reader record, once per fiber
        vmap::set_sched_hook(&hook);
        bodies_[self]();
        vmap::set_sched_hook(nullptr);
        finish(self);
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
        std::uint8_t c = 0;
        unsigned next = choose(self, &end_grace, &c);
        if (end_grace)
            vmap::rcu::poll();
        // A thread that may sleep may wake on another CPU: bit 6 of the
        // decision migrates it to cpus_[(c >> 2) % n] (its own task's CPU).
        if (kind == vmap::sched_kind::may_sleep && !cpus_.empty() && (c & 0x40))
            vmap::current().bound_cpu = static_cast<int>(cpus_[(c >> 2) % cpus_.size()]);
        if (next == self)
            return;
        fibers& f = fibers::get();
        f.transfer(f.at(self), f.at(next));
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
    unsigned choose(unsigned self, bool* end_grace = nullptr, std::uint8_t* byte = nullptr) {
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
        if (byte)
            *byte = c;
        unsigned next = runnable_ids[(c >> 1) % n];
        if ((c & 1) == 0 && self < n_ && can_run(self))
            next = self;
        if (k < trace_cap)
            trace_[k].store(static_cast<std::uint8_t>(next), std::memory_order_relaxed);
        running_.store(next, std::memory_order_relaxed);
        return next;
    }

    void finish(unsigned self) {
        slots_[self].status.store(done, std::memory_order_relaxed);
        bool anyone = false;
        for (unsigned i = 0; i < n_; ++i)
            anyone |= slots_[i].status.load(std::memory_order_relaxed) != done;
        fibers& f = fibers::get();
        fibers::context& from = f.at(self);
        fibers::context& next = anyone ? f.at(choose(self)) : f.main();
        // The "exit": all this thread did happens before run() returns. It
        // is the last touch of *this: run() may return and free it, and a
        // later run resumes us.
        exited_.fetch_add(1, std::memory_order_release);
        f.transfer(from, next);
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
    std::vector<std::function<void()>> bodies_;
    std::vector<unsigned> cpus_; // set_migration_cpus()
    slot slots_[max_threads];
    std::atomic<bool> started_{false};
    std::atomic<unsigned> exited_{0};
    std::atomic<unsigned> running_{0};
    std::atomic<std::size_t> decisions_{0};
    std::atomic<std::uint8_t> trace_[trace_cap] = {};
};

} // namespace harness
