#include "common/scratch.h"

#include <cstdlib>
#include <new>

namespace cnnx {
namespace {

struct Slot {
  float* ptr = nullptr;
  size_t cap = 0;
  ~Slot() { std::free(ptr); }
};

struct Slots {
  Slot s[static_cast<int>(ScratchSlot::count)];
};

}  // namespace

float* thread_scratch(ScratchSlot slot, size_t n) {
  thread_local Slots slots;
  Slot& s = slots.s[static_cast<int>(slot)];
  if (n == 0) n = 1;
  if (n > s.cap) {
    std::free(s.ptr);
    s.ptr = nullptr;
    s.cap = 0;
    size_t bytes = ((n * sizeof(float)) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    s.ptr = static_cast<float*>(p);
    s.cap = bytes / sizeof(float);
  }
  return s.ptr;
}

}  // namespace cnnx
