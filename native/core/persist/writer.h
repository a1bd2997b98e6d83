// Writes the sectioned container of docs/FORMAT.md, streaming.
//
// Streaming matters because an index can be larger than the memory one is
// willing to spend on saving it twice: sections are written piece by piece
// straight from the index's own arrays, their CRCs are updated as bytes pass
// through, and the header (which holds every section's offset, length and
// CRC) is written last, over a zero placeholder at the front of the file.
//
// The placeholder has room for WriteOptions::max_sections entries; the real
// header may be shorter, and the rest of the room stays zero padding (the
// reader accepts zero bytes between the header and the first section).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "format.h"

namespace rabitq {
namespace persist {

struct WriteOptions {
  // Room reserved in the header; more sections than this is an error.
  size_t max_sections = 32;
  // Write buffer of the file target (bytes). Larger writes bypass it.
  size_t buffer_bytes = size_t{1} << 20;
};

namespace detail {
class Sink;
}

class ContainerWriter;

// The container as bytes (the same bytes the file target writes).
std::vector<uint8_t> write_to_memory(const std::function<void(ContainerWriter&)>& fill,
                                     const WriteOptions& options = WriteOptions());

// Replaces `path` with a new container, atomically: fill writes into a fresh
// temporary file in the same folder (path + ".tmp-<pid>-<random>"), which is
// fsynced and renamed over `path`, and then the folder is fsynced. Whatever
// happens (fill throws, the disk fills up, the process is killed), `path` is
// either its old self or the complete new file, never a mix; on an error the
// temporary file is removed and the exception propagates (I/O errors as
// rabitq::Error kGeneric naming the path and the OS error). Only a hard kill
// can leave a stale temporary file behind, never the target half-written.
// The new file gets mode 0666 & ~umask, like any newly created file.
void write_file_atomically(const std::string& path, const std::function<void(ContainerWriter&)>& fill,
                           const WriteOptions& options = WriteOptions());

class ContainerWriter {
 public:
  // Opens a section. Its first byte lands at the next multiple of
  // kSectionAlign (zero padding in between). Tags must be unique.
  void begin_section(uint32_t tag);
  // Appends to the open section; may be called any number of times.
  void write(const void* data, size_t n);
  // Appends one trivially copyable value / n of them, in memory order (which
  // is the file's byte order, see format.h).
  template <class T>
  void write_value(const T& v) {
    static_assert(std::is_trivially_copyable<T>::value, "write_value needs a trivially copyable type");
    write(&v, sizeof(T));
  }
  template <class T>
  void write_array(const T* p, size_t n) {
    static_assert(std::is_trivially_copyable<T>::value, "write_array needs a trivially copyable type");
    write(p, n * sizeof(T));
  }
  // Appends zero bytes until the open section's length is a multiple of
  // `alignment` (a power of two <= kSectionAlign), so that an array placed
  // after it inside the section is aligned in the file too.
  void pad_to(size_t alignment);
  // Closes the open section.
  void end_section();
  // Writes the header. Called by write_file_atomically / write_to_memory
  // after fill returns, unless fill already did.
  void finish();

  bool finished() const { return finished_; }
  bool in_section() const { return open_; }
  // Bytes written to the open section so far.
  uint64_t section_size() const { return open_ ? pos_ - sections_.back().offset : 0; }
  size_t section_count() const { return sections_.size(); }

  ContainerWriter(const ContainerWriter&) = delete;
  ContainerWriter& operator=(const ContainerWriter&) = delete;

 private:
  friend std::vector<uint8_t> write_to_memory(const std::function<void(ContainerWriter&)>&, const WriteOptions&);
  friend void write_file_atomically(const std::string&, const std::function<void(ContainerWriter&)>&,
                                    const WriteOptions&);

  struct Entry {
    uint32_t tag;
    uint64_t offset;
    uint64_t length;
    uint32_t crc;
  };

  ContainerWriter(detail::Sink& sink, size_t max_sections);
  void put(const void* data, size_t n);
  void put_zeros(size_t n);

  detail::Sink& sink_;
  size_t max_sections_;
  uint64_t pos_ = 0;
  bool open_ = false;
  bool finished_ = false;
  uint32_t crc_ = 0;
  std::vector<Entry> sections_;
};

}  // namespace persist
}  // namespace rabitq
