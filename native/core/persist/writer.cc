// The two targets of ContainerWriter: a growing vector, and a temporary file
// written through a large buffer (one syscall per MiB rather than per
// write() call of the index code, which writes many small fields).
#include "writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "../common.h"
#include "crc32c.h"

namespace rabitq {
namespace persist {

namespace detail {

class Sink {
 public:
  virtual ~Sink() = default;
  // Appends at the current end.
  virtual void append(const uint8_t* p, size_t n) = 0;
  // Called once, after the last append: overwrites the start with the header.
  virtual void write_header(const uint8_t* p, size_t n) = 0;
};

}  // namespace detail

namespace {

const uint8_t kZeros[4096] = {};

[[noreturn]] void misuse(const std::string& msg) { throw Error(ErrorKind::kGeneric, "ContainerWriter: " + msg); }

void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

void store_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

class MemorySink : public detail::Sink {
 public:
  void append(const uint8_t* p, size_t n) override { bytes.insert(bytes.end(), p, p + n); }
  void write_header(const uint8_t* p, size_t n) override { std::memcpy(bytes.data(), p, n); }
  std::vector<uint8_t> bytes;
};

class FileSink : public detail::Sink {
 public:
  FileSink(int fd, const std::string& target, const std::string& temp, size_t buffer_bytes)
      : fd_(fd), target_(target), temp_(temp), cap_(buffer_bytes) {
    buf_.reserve(cap_);
  }

  void append(const uint8_t* p, size_t n) override {
    if (buf_.size() + n <= cap_) {
      buf_.insert(buf_.end(), p, p + n);
      return;
    }
    flush();
    if (n >= cap_) {
      write_all(p, n);
    } else {
      buf_.insert(buf_.end(), p, p + n);
    }
  }

  void write_header(const uint8_t* p, size_t n) override {
    flush();
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(done));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail(errno);
      }
      done += static_cast<size_t>(r);
    }
  }

  [[noreturn]] void fail(int err) const {
    throw Error(ErrorKind::kGeneric, "cannot save '" + target_ + "': writing the temporary file '" + temp_ +
                                         "' failed: " + std::strerror(err));
  }

 private:
  void flush() {
    if (!buf_.empty()) write_all(buf_.data(), buf_.size());
    buf_.clear();
  }

  void write_all(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t r = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail(errno);
      }
      // write() returning 0 for a non-empty request should not happen on a
      // regular file; treat it as a full disk rather than spin.
      if (r == 0) fail(ENOSPC);
      p += r;
      n -= static_cast<size_t>(r);
    }
  }

  int fd_;
  const std::string& target_;
  const std::string& temp_;
  size_t cap_;
  std::vector<uint8_t> buf_;
};

std::string parent_folder(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t r = counter.fetch_add(1) * 0x9e3779b97f4a7c15ULL;
  r ^= static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  try {
    std::random_device rd;
    r ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // The counter and the clock keep names unique within this process; the
    // pid in the name separates processes.
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 12; ++i) s += hex[(r >> (4 * i)) & 0xfu];
  return s;
}

// Deletes temporary files that earlier saves of `target` left behind when
// their process was killed mid-save (`target.tmp-<pid>-<random>` with no
// process <pid> alive): each can be as large as the index. Files of live
// processes are left alone; a process in another PID namespace writing the
// same path would look dead, and its save would then fail cleanly (its
// rename finds no file) without touching the target. Best effort: errors
// are ignored.
void remove_stale_temp_files(const std::string& target) {
  const size_t slash = target.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  const std::string prefix = (slash == std::string::npos ? target : target.substr(slash + 1)) + ".tmp-";
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) return;
  while (struct dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t i = prefix.size();
    long pid = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && pid < (1L << 40)) pid = pid * 10 + (name[i++] - '0');
    if (i == prefix.size() || i >= name.size() || name[i] != '-' || pid <= 0) continue;
    if (pid == static_cast<long>(::getpid())) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    const std::string full = folder + "/" + name;
    struct stat st;
    if (::lstat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::unlink(full.c_str());
  }
  ::closedir(dir);
}

// Removes the temporary file unless the rename happened.
class TempFile {
 public:
  TempFile(const std::string& target) : target_(target) {
    for (int attempt = 0;; ++attempt) {
      path_ = target + ".tmp-" + std::to_string(static_cast<long>(::getpid())) + "-" + random_suffix();
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0) return;
      const int err = errno;
      if ((err == EEXIST || err == EINTR) && attempt < 16) continue;
      throw Error(ErrorKind::kGeneric, "cannot save '" + target + "': creating the temporary file '" + path_ +
                                           "' failed: " + std::strerror(err));
    }
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const char* step, int err) const {
    throw Error(ErrorKind::kGeneric, "cannot save '" + target_ + "': " + step + " the temporary file '" + path_ +
                                         "' failed: " + std::strerror(err));
  }

  void sync_and_close() {
    int r;
    do {
      r = ::fsync(fd_);
    } while (r != 0 && errno == EINTR);
    if (r != 0) fail("syncing", errno);
    const int fd = fd_;
    fd_ = -1;
    // close() can report a deferred write error (NFS); a file that failed to
    // close is not known to be whole. No retry on EINTR: the descriptor is
    // gone either way on Linux.
    if (::close(fd) != 0 && errno != EINTR) fail("closing", errno);
  }

  void rename_over_target() {
    if (::rename(path_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      throw Error(ErrorKind::kGeneric, "cannot save '" + target_ + "': renaming the temporary file '" + path_ +
                                           "' over it failed: " + std::strerror(err));
    }
    renamed_ = true;
  }

 private:
  const std::string& target_;
  std::string path_;
  int fd_ = -1;
  bool renamed_ = false;
};

// Makes the rename itself durable: until the folder's entry is on disk, a
// power cut can bring back the old name (or no file, for a first save).
void sync_folder(const std::string& target) {
  const std::string folder = parent_folder(target);
  int fd;
  do {
    fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  int err = 0;
  if (fd < 0) {
    err = errno;
  } else {
    int r;
    do {
      r = ::fsync(fd);
    } while (r != 0 && errno == EINTR);
    if (r != 0) err = errno;
    ::close(fd);
  }
  // Some file systems cannot sync a directory and say so; nothing more can
  // be done there, and the data itself is already synced.
  if (err != 0 && err != EINVAL && err != ENOTSUP && err != EROFS) {
    throw Error(ErrorKind::kGeneric, "'" + target + "' was saved, but syncing its folder '" + folder +
                                         "' failed (the save may not survive a power loss): " + std::strerror(err));
  }
}

}  // namespace

ContainerWriter::ContainerWriter(detail::Sink& sink, size_t max_sections) : sink_(sink), max_sections_(max_sections) {
  if (max_sections > kMaxSections) {
    throw Error(ErrorKind::kRange, "ContainerWriter: max_sections is " + std::to_string(max_sections) +
                                       "; the format allows at most " + std::to_string(kMaxSections));
  }
  put_zeros(align_up(header_bytes(max_sections), kSectionAlign));
}

void ContainerWriter::put(const void* data, size_t n) {
  if (n == 0) return;
  sink_.append(static_cast<const uint8_t*>(data), n);
  pos_ += n;
}

void ContainerWriter::put_zeros(size_t n) {
  while (n > 0) {
    const size_t k = std::min(n, sizeof(kZeros));
    put(kZeros, k);
    n -= k;
  }
}

void ContainerWriter::begin_section(uint32_t tag) {
  if (finished_) misuse("begin_section(" + tag_name(tag) + ") after finish()");
  if (open_)
    misuse("begin_section(" + tag_name(tag) + ") while section " + tag_name(sections_.back().tag) + " is open");
  for (const Entry& e : sections_) {
    if (e.tag == tag) misuse("section " + tag_name(tag) + " written twice");
  }
  if (sections_.size() >= max_sections_) {
    misuse("more than " + std::to_string(max_sections_) + " sections (raise WriteOptions::max_sections)");
  }
  put_zeros(static_cast<size_t>(align_up(pos_, kSectionAlign) - pos_));
  sections_.push_back(Entry{tag, pos_, 0, 0});
  crc_ = 0;
  open_ = true;
}

void ContainerWriter::write(const void* data, size_t n) {
  if (!open_) misuse(finished_ ? "write() after finish()" : "write() outside a section");
  if (n == 0) return;
  crc_ = crc32c_update(crc_, data, n);
  put(data, n);
}

void ContainerWriter::pad_to(size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > kSectionAlign) {
    misuse("pad_to(" + std::to_string(alignment) +
           "): alignment must be a power of two <= " + std::to_string(kSectionAlign));
  }
  if (!open_) misuse("pad_to() outside a section");
  const size_t n = static_cast<size_t>(align_up(section_size(), alignment) - section_size());
  write(kZeros, n);
}

void ContainerWriter::end_section() {
  if (!open_) misuse("end_section() without an open section");
  Entry& e = sections_.back();
  e.length = pos_ - e.offset;
  e.crc = crc_;
  open_ = false;
}

void ContainerWriter::finish() {
  if (finished_) misuse("finish() called twice");
  if (open_) misuse("finish() while section " + tag_name(sections_.back().tag) + " is open (call end_section())");
  const size_t n = sections_.size();
  std::vector<uint8_t> h(header_bytes(n), 0);
  std::memcpy(h.data(), kMagic, sizeof(kMagic));
  store_u32(&h[8], kFormatVersion);
  store_u32(&h[12], kByteOrderMark);
  store_u32(&h[16], static_cast<uint32_t>(h.size()));
  store_u32(&h[20], static_cast<uint32_t>(n));
  store_u64(&h[24], pos_);
  for (size_t i = 0; i < n; ++i) {
    uint8_t* e = &h[kFixedHeaderBytes + i * kSectionEntryBytes];
    store_u32(e + 0, sections_[i].tag);
    store_u64(e + 8, sections_[i].offset);
    store_u64(e + 16, sections_[i].length);
    store_u32(e + 24, sections_[i].crc);
  }
  const size_t body = h.size() - kHeaderCrcBytes;
  store_u32(&h[body], crc32c(h.data(), body));
  sink_.write_header(h.data(), h.size());
  finished_ = true;
}

std::vector<uint8_t> write_to_memory(const std::function<void(ContainerWriter&)>& fill, const WriteOptions& options) {
  MemorySink sink;
  ContainerWriter w(sink, options.max_sections);
  fill(w);
  if (!w.finished()) w.finish();
  return std::move(sink.bytes);
}

void write_file_atomically(const std::string& path, const std::function<void(ContainerWriter&)>& fill,
                           const WriteOptions& options) {
  if (path.empty()) throw Error(ErrorKind::kGeneric, "cannot save: the path is empty");
  if (path.back() == '/') throw Error(ErrorKind::kGeneric, "cannot save '" + path + "': the path names a folder");
  // The system calls would end the path at its NUL and write somewhere else.
  if (path.find('\0') != std::string::npos)
    throw Error(ErrorKind::kType, "cannot save to a path that contains a NUL character");
  remove_stale_temp_files(path);
  TempFile temp(path);
  {
    FileSink sink(temp.fd(), path, temp.path(), options.buffer_bytes);
    ContainerWriter w(sink, options.max_sections);
    fill(w);
    if (!w.finished()) w.finish();
  }
  temp.sync_and_close();
  temp.rename_over_target();
  sync_folder(path);
}

}  // namespace persist
}  // namespace rabitq
