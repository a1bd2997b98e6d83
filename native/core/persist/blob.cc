// POSIX only (open/fstat/mmap), like the rest of the native build.
//
// The codes, factors and ids are read in per-cluster runs of a few KB to a
// few hundred KB at unpredictable places, for which the kernel's default
// readahead is the right policy (MADV_RANDOM would turn each run into
// page-sized faults; MADV_WILLNEED would read the whole file up front, the
// opposite of why one maps instead of reading). The raw vectors are the
// exception: one row per re-rank, anywhere; with readahead each of those
// faults pulled in ~128 KB around it, and a warm sweep of 2,000 queries made
// the whole 488 MiB vector section of sift1m-cv resident though the 3-bit
// index re-ranks only 45 MiB of rows. advise_random() is for them.
#include "blob.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../common.h"
#include "../huge_pages.h"

namespace rabitq {
namespace persist {

namespace {

constexpr size_t kAlign = 64;

[[noreturn]] void throw_os(const std::string& what, const std::string& path, int err) {
  throw Error(ErrorKind::kGeneric, "cannot " + what + " '" + path + "': " + std::strerror(err));
}

// Closes the descriptor on every path out of a loader.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// O_NONBLOCK: opening a FIFO (or a device that waits on open) returns at
// once and is then refused by loadable_size(), instead of holding a libuv
// thread until some writer appears. Reads of regular files never block, so
// the flag changes nothing for them. A path with a NUL would silently name
// its prefix: refused.
int open_read_only(const std::string& path, const char* verb) {
  if (path.find('\0') != std::string::npos)
    throw Error(ErrorKind::kType, std::string("cannot ") + verb + " a path that contains a NUL character");
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_os(verb, path, errno);
  return fd;
}

// The size of a regular, non-empty file.
size_t loadable_size(int fd, const std::string& path, const char* verb) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_os(verb, path, errno);
  if (S_ISDIR(st.st_mode)) throw_os(verb, path, EISDIR);
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorKind::kGeneric, std::string("cannot ") + verb + " '" + path + "': not a regular file");
  }
  if (st.st_size == 0) {
    throw Error(ErrorKind::kFormat, "'" + path + "' is empty (0 bytes), not a rabitq index");
  }
  if (static_cast<unsigned long long>(st.st_size) > static_cast<unsigned long long>(SIZE_MAX)) {
    throw Error(ErrorKind::kGeneric, std::string("cannot ") + verb + " '" + path + "': too large for this process");
  }
  return static_cast<size_t>(st.st_size);
}

}  // namespace

std::shared_ptr<Blob> Blob::heap(size_t n) {
  // A loaded index: big arrays read at random, so huge pages when large (see
  // huge_pages.h). A zero-byte blob still gets a valid, unique pointer.
  void* p = allocate_maybe_huge(n == 0 ? kAlign : n);
  return std::shared_ptr<Blob>(new Blob(static_cast<uint8_t*>(p), n, false));
}

void Blob::advise_random(const uint8_t* p, size_t n) const {
  if (!mapped_ || n == 0 || p < data_ || p + n > data_ + size_) return;
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) return;
  const uintptr_t page = static_cast<uintptr_t>(page_size);
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;  // whole pages only
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_RANDOM);
}

std::shared_ptr<Blob> Blob::copy_of(const void* data, size_t n) {
  auto blob = heap(n);
  if (n > 0) std::memcpy(blob->data_, data, n);
  return blob;
}

std::shared_ptr<Blob> Blob::read_file(const std::string& path) {
  Fd fd(open_read_only(path, "read"));
  const size_t size = loadable_size(fd.get(), path, "read");
  auto blob = heap(size);
  size_t done = 0;
  while (done < size) {
    const size_t chunk = std::min<size_t>(size - done, size_t{1} << 30);
    const ssize_t r = ::read(fd.get(), blob->data_ + done, chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_os("read", path, errno);
    }
    if (r == 0) {
      throw Error(ErrorKind::kFormat, "'" + path + "' shrank while being read (expected " + std::to_string(size) +
                                          " bytes, got " + std::to_string(done) + ")");
    }
    done += static_cast<size_t>(r);
  }
  return blob;
}

std::shared_ptr<Blob> Blob::map_file(const std::string& path) {
  Fd fd(open_read_only(path, "map"));
  const size_t size = loadable_size(fd.get(), path, "map");
  // The mapping holds its own reference to the file; the descriptor can go.
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) throw_os("map", path, errno);
  try {
    return std::shared_ptr<Blob>(new Blob(static_cast<uint8_t*>(p), size, true));
  } catch (...) {
    ::munmap(p, size);
    throw;
  }
}

Blob::~Blob() {
  if (mapped_) {
    ::munmap(data_, size_);
  } else {
    std::free(data_);
  }
}

}  // namespace persist
}  // namespace rabitq
