// The bytes of a loaded index, shared by everything that points into them.
//
// A loaded index keeps raw pointers into its file's bytes instead of copying
// arrays out, so those bytes must live exactly as long as the last object
// that points into them: hence a shared_ptr, and one type for the three
// sources (a heap copy of a file, a memory mapping, a caller's buffer).
//
// All three hand out 64-byte aligned data, so a section at a 64-byte file
// offset (see format.h) yields aligned arrays whichever way it was loaded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rabitq {
namespace persist {

class Blob {
 public:
  // Reads the whole file into an aligned heap buffer. Errors: kGeneric for
  // I/O (the message names the file and the OS error), kFormat for an empty
  // file.
  static std::shared_ptr<Blob> read_file(const std::string& path);

  // Maps the file read-only and private. The mapping shares the page cache
  // with other processes and loads lazily; it stays valid while the file is
  // replaced by an atomic save (rename swaps the name, the mapped inode
  // lives on), but truncating the file in place under a mapping makes later
  // reads fault (SIGBUS), which is why saves never rewrite a file in place.
  // Same errors as read_file.
  static std::shared_ptr<Blob> map_file(const std::string& path);

  // An aligned copy of caller memory (e.g. a Buffer from JS, which may move
  // or be mutated after the call). n may be 0.
  static std::shared_ptr<Blob> copy_of(const void* data, size_t n);

  ~Blob();
  Blob(const Blob&) = delete;
  Blob& operator=(const Blob&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool mapped() const { return mapped_; }
  // For a mapped blob: bytes [p, p + n) are read at random places, a few
  // hundred bytes at a time (the raw vectors a search re-ranks). Turns off
  // readahead for the whole pages inside the range, so that resident memory
  // follows what is read instead of the file size. Advice only: no effect on
  // a heap blob, and errors are ignored.
  void advise_random(const uint8_t* p, size_t n) const;

 private:
  Blob(uint8_t* data, size_t size, bool mapped) : data_(data), size_(size), mapped_(mapped) {}
  static std::shared_ptr<Blob> heap(size_t n);

  uint8_t* data_;
  size_t size_;
  bool mapped_;
};

}  // namespace persist
}  // namespace rabitq
