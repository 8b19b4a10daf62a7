// The cooperative mode of an inference plan: every thread on every op of the
// same few images, a barrier between ops, and the measured choice between it
// and one thread.
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "cnnx/activation.h"
#include "cnnx/plan.h"
#include "common/scratch.h"
#include "plan/plan_internal.h"

#ifdef CNNX_HAVE_OPENMP
#include <omp.h>
#endif

namespace cnnx {

using plan_detail::dense_by_columns;

namespace {

// The barrier between the ops of a cooperative run. It spins briefly, then
// yields its core: when another process holds a core, the thread we wait
// for may be descheduled, and a waiter that keeps spinning (as OpenMP's own
// barrier does for up to its spin count) only delays it further: measured
// here at several milliseconds per barrier instead of microseconds.
class YieldingBarrier {
 public:
  explicit YieldingBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int i = 0; gen_.load(std::memory_order_acquire) == gen; ++i) {
      if (i < 2000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

}  // namespace

// Each mode is judged by the fastest run seen in the current window (other
// processes only ever make a run slower, so the minimum is what a mode costs
// on free cores); a window restarts every 1024 calls, so a lasting change is
// noticed. The slower mode is re-tried now and then, less and less often
// while it stays much slower (a cooperative run on a busy machine can cost
// milliseconds).
bool InferencePlan::ModeChooser::pick() {
  probing = false;
  if (seen[0] < 3) return false;
  if (seen[1] < 3) return probing = true;
  const bool fast = best[1] < best[0];
  if (calls >= next_probe) {
    probing = true;
    return !fast;
  }
  return fast;
}

void InferencePlan::ModeChooser::record(bool coop, double secs) {
  ++calls;
  const int m = coop ? 1 : 0;
  best[m] = seen[m] ? std::min(best[m], secs) : secs;
  ++seen[m];
  if (probing && seen[1 - m] > 0) {
    interval = secs > 1.5 * best[1 - m] ? std::min<int64_t>(interval * 2, 4096) : 32;
    next_probe = calls + interval;
  }
  if (calls % 1024 == 0) seen[0] = seen[1] = 0;  // a new window
}

// All threads on the same images, op after op, each taking its part of every
// op, with a barrier between ops: one fork/join per call instead of one per
// layer. For one image (or a few) on several cores.
void InferencePlan::run_cooperative(const float* const* x, int64_t N, float* const* y, int workers,
                                    int64_t cap) {
  const int64_t chunk = std::min(cap, N);
  float* arena = thread_scratch(ScratchSlot::plan, static_cast<size_t>(arena_per_image_ * chunk));
  std::exception_ptr error;
  std::mutex error_mu;
  YieldingBarrier* barrier = nullptr;
  std::unique_ptr<YieldingBarrier> barrier_owner;
#ifdef CNNX_HAVE_OPENMP
#pragma omp parallel num_threads(workers)
#endif
  {
#ifdef CNNX_HAVE_OPENMP
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
#pragma omp single
    {
      barrier_owner = std::make_unique<YieldingBarrier>(T);
      barrier = barrier_owner.get();
    }  // (implicit barrier: every thread sees it)
#else
    const int t = 0, T = 1;
#endif
    std::vector<float*> buf;
    for (int64_t i = 0; i < N; i += chunk) {
      const int64_t n = std::min(chunk, N - i);
      set_buffers(buf, x, y, i, arena, chunk);
      const bool last_chunk = i + chunk >= N;
      for (size_t k = 0; k < ops_.size(); ++k) {
        Op& op = ops_[k];
        try {
          run_op_part(op, buf.data(), n, t, T);
        } catch (...) {
          std::lock_guard<std::mutex> g(error_mu);
          if (!error) error = std::current_exception();
        }
        const bool split_softmax = op.s.kind == OpKind::dense && grouped_act(op.s.act) &&
                                   dense_by_columns(n, T, op.s.out_f);
        // The region's own end is the last barrier.
        if (T > 1 && (!last_chunk || k + 1 < ops_.size() || split_softmax)) barrier->wait();
        if (split_softmax && t == 0)
          plan_detail::apply_activation(op.s.act, op.s.alpha, buf[op.s.out], n * op.s.out_f,
                                        op.s.out_f, op.s.beta);
        if (split_softmax && T > 1 && (!last_chunk || k + 1 < ops_.size())) barrier->wait();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace cnnx
