// The persistence layer (native/core/persist): CRC-32C against known vectors
// and across both implementations, the container's exact byte layout, the
// promise that every single-byte change and every truncation is caught,
// the error messages, and the atomic-save guarantees (including SIGKILL in
// the middle of a save).
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "kernels/kernels.h"
#include "persist/blob.h"
#include "persist/crc32c.h"
#include "persist/format.h"
#include "persist/reader.h"
#include "persist/writer.h"
#include "testing.h"

using rabitq::Error;
using rabitq::ErrorKind;
using namespace rabitq::persist;

namespace {

// Bit-at-a-time CRC-32C straight from the definition: the independent
// reference both fast paths are compared with.
uint32_t crc_reference(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
  }
  return ~c;
}

std::vector<uint8_t> random_bytes(rabitq_test::Rng& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng.next());
  return v;
}

using rabitq_test::slurp;

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The message of the rabitq::Error `fn` throws ("" if none, "<other>" for a
// different exception type); *kind receives its kind.
template <class F>
std::string error_of(F&& fn, ErrorKind* kind = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  } catch (...) {
    return "<other>";
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

constexpr uint32_t kMeta = fourcc("META");
constexpr uint32_t kVecs = fourcc("VECS");
constexpr uint32_t kNone = fourcc("NONE");
constexpr uint32_t kIds = fourcc("IDS_");

struct Content {
  uint32_t tag;
  std::vector<uint8_t> bytes;
};

// Writes each section in random-sized pieces, exercising the incremental CRC.
void fill_sections(ContainerWriter& w, const std::vector<Content>& sections, uint64_t seed) {
  rabitq_test::Rng rng(seed);
  for (const auto& s : sections) {
    w.begin_section(s.tag);
    size_t done = 0;
    while (done < s.bytes.size()) {
      const size_t piece = std::min(s.bytes.size() - done, 1 + rng.below(rng.below(4) == 0 ? 70000 : 100));
      w.write(s.bytes.data() + done, piece);
      done += piece;
    }
    w.end_section();
  }
}

std::vector<Content> sample_sections(uint64_t seed, size_t big = 100000) {
  rabitq_test::Rng rng(seed);
  return {{kMeta, random_bytes(rng, 37)}, {kVecs, random_bytes(rng, big)}, {kNone, {}}, {kIds, random_bytes(rng, 64)}};
}

std::shared_ptr<Blob> blob_of(const std::vector<uint8_t>& v) { return Blob::copy_of(v.data(), v.size()); }

uint32_t get_u32(const std::vector<uint8_t>& v, size_t at) {
  uint32_t x;
  std::memcpy(&x, &v[at], 4);
  return x;
}
void put_u32(std::vector<uint8_t>& v, size_t at, uint32_t x) { std::memcpy(&v[at], &x, 4); }
void put_u64(std::vector<uint8_t>& v, size_t at, uint64_t x) { std::memcpy(&v[at], &x, 8); }
uint64_t get_u64(const std::vector<uint8_t>& v, size_t at) {
  uint64_t x;
  std::memcpy(&x, &v[at], 8);
  return x;
}
// Recomputes the header CRC after a deliberate edit, so the checks behind it
// are reached.
void reseal(std::vector<uint8_t>& v) {
  const uint32_t hl = get_u32(v, 16);
  put_u32(v, hl - 4, crc32c(v.data(), hl - 4));
}

// ---- CRC-32C -----------------------------------------------------------------

TEST_CASE("crc32c: known vectors, every implementation" * doctest::test_suite("persist")) {
  std::vector<std::pair<std::vector<uint8_t>, uint32_t>> vectors;
  const char* digits = "123456789";
  vectors.push_back({std::vector<uint8_t>(digits, digits + 9), 0xE3069283u});
  vectors.push_back({{}, 0u});
  vectors.push_back({{'a'}, 0xC1D04330u});
  // RFC 3720 (iSCSI), appendix B.4.
  vectors.push_back({std::vector<uint8_t>(32, 0x00), 0x8A9136AAu});
  vectors.push_back({std::vector<uint8_t>(32, 0xff), 0x62A8AB43u});
  std::vector<uint8_t> up(32), down(32);
  for (int i = 0; i < 32; ++i) up[i] = static_cast<uint8_t>(i), down[i] = static_cast<uint8_t>(31 - i);
  vectors.push_back({up, 0x46DD794Eu});
  vectors.push_back({down, 0x113FDB5Cu});
  for (const auto& tv : vectors) {
    const auto& b = tv.first;
    CHECK_MESSAGE(crc_reference(b.data(), b.size()) == tv.second, "reference, n=" << b.size());
    CHECK_MESSAGE(crc32c_scalar(0, b.data(), b.size()) == tv.second, "scalar, n=" << b.size());
    CHECK_MESSAGE(crc32c(b.data(), b.size()) == tv.second, "dispatched, n=" << b.size());
    if (crc32c_hw_available()) CHECK_MESSAGE(crc32c_hw(0, b.data(), b.size()) == tv.second, "sse4.2, n=" << b.size());
  }
  CHECK((crc32c_scalar(0, nullptr, 0) == 0));
  CHECK((crc32c(nullptr, 0) == 0));
}

TEST_CASE("crc32c: SSE4.2 == scalar == reference for lengths 0..1000 at every alignment" *
          doctest::test_suite("persist")) {
  rabitq_test::Rng rng(42);
  const auto buf = random_bytes(rng, 1000 + 64);
  for (size_t n = 0; n <= 1000; ++n) {
    const size_t off = rng.below(16);  // odd alignments too
    const uint8_t* p = buf.data() + off;
    const uint32_t seed = rng.below(4) == 0 ? static_cast<uint32_t>(rng.next()) : 0;
    const uint32_t s = crc32c_scalar(seed, p, n);
    if (seed == 0) CHECK_MESSAGE(s == crc_reference(p, n), "n=" << n << " off=" << off);
    if (crc32c_hw_available())
      CHECK_MESSAGE(crc32c_hw(seed, p, n) == s, "n=" << n << " off=" << off << " seed=" << seed);
  }
}

TEST_CASE("crc32c: long inputs (the three-stream path) and chaining over pieces" * doctest::test_suite("persist")) {
  rabitq_test::Rng rng(7);
  const auto buf = random_bytes(rng, 300000);
  std::vector<size_t> lengths = {3071, 3072, 3073, 3079, 3080, 6144, 6151, 9216, 12345, 65536, 299990};
  for (int i = 0; i < 30; ++i) lengths.push_back(rng.below(299990));
  for (size_t n : lengths) {
    for (size_t off : {0, 1, 3, 7, 8}) {
      const uint8_t* p = buf.data() + off;
      const uint32_t whole = crc32c_scalar(0, p, n);
      if (n < 20000) CHECK_MESSAGE(whole == crc_reference(p, n), "n=" << n);
      if (crc32c_hw_available()) CHECK_MESSAGE(crc32c_hw(0, p, n) == whole, "hw n=" << n << " off=" << off);
      // Chained in random pieces through the dispatcher.
      uint32_t c = 0;
      size_t done = 0;
      while (done < n) {
        const size_t piece = std::min(n - done, rng.below(20000) + 1);
        c = crc32c_update(c, p + done, piece);
        done += piece;
      }
      CHECK_MESSAGE(c == whole, "chained n=" << n << " off=" << off);
    }
  }
}

TEST_CASE("crc32c: the scalar SIMD level forces the scalar path" * doctest::test_suite("persist")) {
  using rabitq::SimdLevel;
  const SimdLevel before = rabitq::active_level();
  rabitq::set_active_level(SimdLevel::kScalar);
  CHECK(!crc32c_uses_hw());
  const uint8_t digits[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK(crc32c(digits, 9) == 0xE3069283u);
  rabitq::set_active_level(rabitq::detected_level());
  CHECK((crc32c_uses_hw() == (crc32c_hw_available() && rabitq::detected_level() != SimdLevel::kScalar)));
  rabitq::set_active_level(before);
}

// Run by ctest with RABITQ_SIMD set (see CMakeLists.txt: simd_env_*).
TEST_CASE("RABITQ_SIMD=scalar also forces the scalar CRC-32C" * doctest::test_suite("simd_env")) {
  const char* env = std::getenv("RABITQ_SIMD");
  rabitq::SimdLevel wanted;
  if (env == nullptr || !rabitq::parse_level(env, &wanted) || rabitq::kernels_for(wanted) == nullptr) return;
  if (wanted == rabitq::SimdLevel::kScalar) {
    CHECK(!crc32c_uses_hw());
  } else {
    CHECK(crc32c_uses_hw() == crc32c_hw_available());
  }
}

// ---- layout and round trips ---------------------------------------------------

TEST_CASE("fourcc and tag names" * doctest::test_suite("persist")) {
  CHECK(fourcc("META") == 0x4154454Du);  // bytes 4d 45 54 41 = "META"
  CHECK(tag_name(fourcc("META")) == "'META'");
  CHECK(tag_name(0x00000001u) == "0x00000001");
}

TEST_CASE("the header bytes are exactly as documented" * doctest::test_suite("persist")) {
  WriteOptions opt;
  opt.max_sections = 3;
  const std::vector<uint8_t> a = {1, 2, 3};
  const auto bytes = write_to_memory(
      [&](ContainerWriter& w) {
        w.begin_section(kMeta);
        w.write(a.data(), a.size());
        w.end_section();
        w.begin_section(kVecs);
        w.write_value<uint32_t>(0xdeadbeefu);
        w.end_section();
      },
      opt);
  // Room for 3 entries: 36 + 3*32 = 132 -> first section at 192.
  CHECK(std::memcmp(bytes.data(), "RABITQIX", 8) == 0);
  CHECK(get_u32(bytes, 8) == kFormatVersion);
  CHECK((bytes[12] == 0x04 && bytes[13] == 0x03 && bytes[14] == 0x02 && bytes[15] == 0x01));
  CHECK(get_u32(bytes, 16) == 36 + 2 * 32);
  CHECK(get_u32(bytes, 20) == 2);
  CHECK(get_u64(bytes, 24) == bytes.size());
  CHECK(bytes.size() == 256 + 4);
  // Entry 0.
  CHECK((get_u32(bytes, 32) == kMeta && std::memcmp(&bytes[32], "META", 4) == 0));
  CHECK(get_u32(bytes, 36) == 0);
  CHECK(get_u64(bytes, 40) == 192);
  CHECK(get_u64(bytes, 48) == 3);
  CHECK(get_u32(bytes, 56) == crc32c(a.data(), 3));
  CHECK(get_u32(bytes, 60) == 0);
  // Entry 1.
  CHECK(get_u32(bytes, 64) == kVecs);
  CHECK(get_u64(bytes, 72) == 256);
  CHECK(get_u64(bytes, 80) == 4);
  // Header CRC over bytes 0..95, at 96.
  CHECK(get_u32(bytes, 96) == crc32c(bytes.data(), 96));
  for (size_t i = 100; i < 192; ++i) CHECK_MESSAGE(bytes[i] == 0, "i=" << i);
  for (size_t i = 195; i < 256; ++i) CHECK_MESSAGE(bytes[i] == 0, "i=" << i);
  CHECK((bytes[192] == 1 && bytes[194] == 3));
  CHECK(get_u32(bytes, 256) == 0xdeadbeefu);

  // An empty container is valid.
  const auto empty = write_to_memory([](ContainerWriter&) {});
  const auto c = Container::parse(blob_of(empty), "buffer");
  CHECK(c.sections().empty());
  CHECK(c.version() == kFormatVersion);
  CHECK(empty.size() == align_up(header_bytes(WriteOptions().max_sections), 64));
}

TEST_CASE("memory round trip: contents, alignment, accessors" * doctest::test_suite("persist")) {
  const auto sections = sample_sections(1);
  const auto bytes = write_to_memory([&](ContainerWriter& w) { fill_sections(w, sections, 2); });
  const auto c = Container::parse(blob_of(bytes), "buffer");
  CHECK(c.version() == kFormatVersion);
  CHECK(c.sections().size() == sections.size());
  for (size_t i = 0; i < sections.size(); ++i) {
    const auto& s = sections[i];
    CHECK(c.has(s.tag));
    const SectionView v = c.section(s.tag);
    CHECK_MESSAGE(v.size == s.bytes.size(), tag_name(s.tag));
    CHECK_MESSAGE((s.bytes.empty() || std::memcmp(v.data, s.bytes.data(), v.size) == 0), tag_name(s.tag));
    CHECK_MESSAGE(reinterpret_cast<uintptr_t>(v.data) % 64 == 0, tag_name(s.tag));
    CHECK(c.sections()[i].tag == s.tag);
    CHECK(c.sections()[i].offset % 64 == 0);
  }
  CHECK(!c.has(fourcc("XXXX")));
  ErrorKind kind = ErrorKind::kGeneric;
  const std::string msg = error_of([&] { c.section(fourcc("XXXX")); }, &kind);
  CHECK_MESSAGE((kind == ErrorKind::kFormat && contains(msg, "buffer") && contains(msg, "'XXXX'")), msg);
  c.verify_all();
  c.verify_section(kVecs);
  CHECK(contains(error_of([&] { c.verify_section(fourcc("XXXX")); }), "'XXXX'"));

  // pad_to aligns within a section; write_array.
  const auto padded = write_to_memory([](ContainerWriter& w) {
    w.begin_section(kMeta);
    w.write_value<uint8_t>(7);
    w.pad_to(16);
    CHECK(w.section_size() == 16);
    w.pad_to(16);
    CHECK(w.section_size() == 16);
    const float f[3] = {1.f, 2.f, 3.f};
    w.write_array(f, 3);
    CHECK(w.section_size() == 28);
    w.end_section();
  });
  const auto pc = Container::parse(blob_of(padded), "buffer");
  float f2;
  std::memcpy(&f2, pc.section(kMeta).data + 20, 4);
  CHECK((pc.section(kMeta).size == 28 && f2 == 2.f));
}

TEST_CASE("file round trip: same bytes as memory, read and mapped, any buffer size" * doctest::test_suite("persist")) {
  rabitq_test::TempDir dir("rabitq-persist");
  const auto sections = sample_sections(3, 3 << 20);  // larger than the 1 MiB buffer
  const auto mem = write_to_memory([&](ContainerWriter& w) { fill_sections(w, sections, 4); });
  for (size_t buffer : {size_t{0}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    const std::string path = dir.file("index.rbq");
    WriteOptions opt;
    opt.buffer_bytes = buffer;
    write_file_atomically(
        path, [&](ContainerWriter& w) { fill_sections(w, sections, 4); }, opt);
    CHECK_MESSAGE(slurp(path) == mem, "buffer=" << buffer);
    CHECK(dir.temp_files() == 0);
  }
  const std::string path = dir.file("index.rbq");
  for (bool map : {false, true}) {
    auto blob = map ? Blob::map_file(path) : Blob::read_file(path);
    CHECK(blob->mapped() == map);
    CHECK(blob->size() == mem.size());
    CHECK(reinterpret_cast<uintptr_t>(blob->data()) % 64 == 0);
    CHECK(std::memcmp(blob->data(), mem.data(), mem.size()) == 0);
    auto c = Container::parse(blob, path, {kVecs});
    blob.reset();  // the container keeps the bytes alive
    const SectionView v = c.section(kVecs);
    CHECK((v.size == sections[1].bytes.size() && std::memcmp(v.data, sections[1].bytes.data(), v.size) == 0));
    CHECK(reinterpret_cast<uintptr_t>(v.data) % 64 == 0);
    c.verify_section(kVecs);
    c.verify_all();
  }
  // Saving over an existing, mapped file leaves the mapping intact.
  auto old_map = Blob::map_file(path);
  const auto other = write_to_memory([&](ContainerWriter& w) { fill_sections(w, sample_sections(9), 1); });
  write_file_atomically(path, [&](ContainerWriter& w) { fill_sections(w, sample_sections(9), 1); });
  CHECK(slurp(path) == other);
  CHECK(std::memcmp(old_map->data(), mem.data(), mem.size()) == 0);
  // A relative path (folder ".") works too.
  char cwd[4096];
  CHECK((::getcwd(cwd, sizeof cwd) != nullptr));
  CHECK(::chdir(dir.path().c_str()) == 0);
  write_file_atomically("relative.rbq", [&](ContainerWriter& w) { fill_sections(w, sections, 4); });
  CHECK(::chdir(cwd) == 0);
  CHECK(slurp(dir.file("relative.rbq")) == mem);
}

// ---- corruption ------------------------------------------------------------------

TEST_CASE("every single-byte change fails the parse, or only verify inside a lazy section" *
          doctest::test_suite("persist")) {
  rabitq_test::Rng rng(11);
  WriteOptions opt;
  opt.max_sections = 5;
  const std::vector<Content> sections = {
      {kMeta, random_bytes(rng, 21)}, {kVecs, random_bytes(rng, 130)}, {kNone, {}}, {kIds, random_bytes(rng, 64)}};
  const auto good = write_to_memory([&](ContainerWriter& w) { fill_sections(w, sections, 5); }, opt);
  const uint64_t lazy_from = get_u64(good, 32 + 32 + 8), lazy_len = get_u64(good, 32 + 32 + 16);
  CHECK(lazy_len == 130);
  size_t tried = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}, static_cast<uint8_t>(rng.next() | 1)}) {
      auto bad = good;
      bad[i] ^= mask;
      ++tried;
      const bool in_lazy = i >= lazy_from && i < lazy_from + lazy_len;
      for (bool lazy : {false, true}) {
        std::set<uint32_t> lazy_tags;
        if (lazy) lazy_tags.insert(kVecs);
        ErrorKind kind = ErrorKind::kGeneric;
        const std::string msg = error_of([&] { Container::parse(blob_of(bad), "buffer", lazy_tags); }, &kind);
        if (lazy && in_lazy) {
          CHECK_MESSAGE(msg.empty(), "byte " << i << ": " << msg);
          const auto c = Container::parse(blob_of(bad), "buffer", lazy_tags);
          const std::string v = error_of([&] { c.verify_section(kVecs); });
          CHECK_MESSAGE((contains(v, "'VECS'") && contains(v, "corrupt")), "byte " << i << ": " << v);
          CHECK(!error_of([&] { c.verify_all(); }).empty());
          CHECK(error_of([&] { c.verify_section(kMeta); }).empty());
        } else {
          CHECK_MESSAGE((!msg.empty() && kind == ErrorKind::kFormat),
                        "byte " << i << " mask " << int(mask) << " lazy=" << lazy);
          CHECK_MESSAGE(contains(msg, "buffer: "), msg);
        }
      }
    }
  }
  CHECK(tried == good.size() * 4);
}

TEST_CASE("every truncation and any trailing byte fails" * doctest::test_suite("persist")) {
  const auto good = write_to_memory([&](ContainerWriter& w) { fill_sections(w, sample_sections(6, 500), 6); });
  for (size_t n = 0; n < good.size(); ++n) {
    ErrorKind kind = ErrorKind::kGeneric;
    const std::string msg = error_of([&] { Container::parse(Blob::copy_of(good.data(), n), "x.rbq"); }, &kind);
    CHECK_MESSAGE((kind == ErrorKind::kFormat && contains(msg, "x.rbq") && contains(msg, "truncated")),
                  "n=" << n << ": " << msg);
  }
  // Past the header, the message gives both sizes.
  const std::string msg = error_of([&] { Container::parse(Blob::copy_of(good.data(), good.size() - 1), "x.rbq"); });
  CHECK_MESSAGE((contains(msg, "expected " + std::to_string(good.size()) + " bytes") &&
                 contains(msg, "actual size " + std::to_string(good.size() - 1))),
                msg);
  auto longer = good;
  longer.push_back(0);
  const std::string trailing = error_of([&] { Container::parse(blob_of(longer), "x.rbq"); });
  CHECK_MESSAGE(contains(trailing, "1 unexpected bytes"), trailing);
}

TEST_CASE("error messages name the problem and the byte offset" * doctest::test_suite("persist")) {
  WriteOptions opt;
  opt.max_sections = 4;
  const auto good = write_to_memory([&](ContainerWriter& w) { fill_sections(w, sample_sections(8, 300), 8); }, opt);
  auto parse_msg = [](const std::vector<uint8_t>& v) {
    return error_of([&] { Container::parse(blob_of(v), "idx.bin"); });
  };
  {
    auto v = good;
    v[0] = 'X';
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "idx.bin: ") && contains(m, "magic") && contains(m, "byte offset 0")), m);
    CHECK_MESSAGE(contains(parse_msg({'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'}), "magic"), "text file");
  }
  {
    auto v = good;
    put_u32(v, 8, kFormatVersion + 1);
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "version " + std::to_string(kFormatVersion + 1)) &&
                   contains(m, "reads versions 1.." + std::to_string(kFormatVersion)) && contains(m, "newer")),
                  m);
    put_u32(v, 8, 0);
    CHECK_MESSAGE(contains(parse_msg(v), "version 0"), parse_msg(v));
  }
  {
    auto v = good;
    v[12] = 1, v[13] = 2, v[14] = 3, v[15] = 4;
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "big-endian") && contains(m, "byte offset 12")), m);
    v[12] = 9;
    CHECK_MESSAGE(contains(parse_msg(v), "byte-order marker"), parse_msg(v));
  }
  {
    auto v = good;
    put_u32(v, 20, 5000);
    CHECK_MESSAGE(contains(parse_msg(v), "section count 5000"), parse_msg(v));
    v = good;
    put_u32(v, 16, get_u32(v, 16) + 4);
    CHECK_MESSAGE(contains(parse_msg(v), "header length"), parse_msg(v));
  }
  {
    auto v = good;
    v[40] ^= 1;  // an offset, without resealing
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "header checksum") && contains(m, "byte offset " + std::to_string(get_u32(v, 16) - 4))),
                  m);
  }
  {
    auto v = good;
    put_u64(v, 24, get_u64(v, 24) + 64);
    reseal(v);
    CHECK_MESSAGE(contains(parse_msg(v), "truncated: expected"), parse_msg(v));
  }
  // Geometry errors, each behind a valid header checksum.
  const size_t e1 = 32 + 32;  // second entry ('VECS')
  {
    auto v = good;
    put_u64(v, e1 + 8, get_u64(v, e1 + 8) + 8);
    reseal(v);
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "'VECS'") && contains(m, "multiple of 64") && contains(m, "byte offset 64")), m);
  }
  {
    auto v = good;
    put_u64(v, e1 + 16, 1u << 20);
    reseal(v);
    CHECK_MESSAGE(contains(parse_msg(v), "past the end"), parse_msg(v));
  }
  {
    auto v = good;
    put_u64(v, e1 + 8, get_u64(v, 32 + 8));  // VECS on top of META
    reseal(v);
    CHECK_MESSAGE(contains(parse_msg(v), "overlaps section 'META'"), parse_msg(v));
  }
  {
    auto v = good;
    put_u32(v, e1, kMeta);
    reseal(v);
    CHECK_MESSAGE(contains(parse_msg(v), "twice"), parse_msg(v));
  }
  {
    auto v = good;
    put_u32(v, e1 + 4, 1);
    reseal(v);
    CHECK_MESSAGE(contains(parse_msg(v), "reserved"), parse_msg(v));
  }
  {
    auto v = good;
    const size_t pad = get_u32(v, 16) + 3;  // inside the header's spare room
    v[pad] = 0x5a;
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "nonzero padding") && contains(m, "byte offset " + std::to_string(pad))), m);
  }
  {
    auto v = good;
    const size_t at = get_u64(v, e1 + 8) + 5;
    v[at] ^= 0x10;
    const std::string m = parse_msg(v);
    CHECK_MESSAGE((contains(m, "'VECS'") && contains(m, "corrupt") && contains(m, std::to_string(at - 5))), m);
  }
  CHECK((contains(error_of([] { Container::parse(nullptr, "idx.bin"); }), "idx.bin")));
}

// ---- writer misuse ------------------------------------------------------------

TEST_CASE("writer misuse is an error" * doctest::test_suite("persist")) {
  auto msg = [](std::function<void(ContainerWriter&)> fill) { return error_of([&] { write_to_memory(fill); }); };
  CHECK(contains(msg([](ContainerWriter& w) { w.write("x", 1); }), "outside a section"));
  CHECK(contains(msg([](ContainerWriter& w) {
                   w.begin_section(kMeta);
                   w.end_section();
                   w.begin_section(kMeta);
                 }),
                 "twice"));
  CHECK(contains(msg([](ContainerWriter& w) { w.begin_section(kMeta); }), "'META' is open"));
  CHECK(contains(msg([](ContainerWriter& w) {
                   w.begin_section(kMeta);
                   w.begin_section(kVecs);
                 }),
                 "is open"));
  CHECK(contains(msg([](ContainerWriter& w) { w.end_section(); }), "without an open section"));
  CHECK(contains(msg([](ContainerWriter& w) {
                   w.finish();
                   w.begin_section(kMeta);
                 }),
                 "after finish"));
  CHECK(contains(msg([](ContainerWriter& w) {
                   for (uint32_t i = 0; i < 33; ++i) {
                     w.begin_section(i + 1);
                     w.end_section();
                   }
                 }),
                 "max_sections"));
  CHECK(contains(msg([](ContainerWriter& w) {
                   w.begin_section(kMeta);
                   w.pad_to(3);
                 }),
                 "power of two"));
  WriteOptions opt;
  opt.max_sections = kMaxSections + 1;
  CHECK(!error_of([&] { write_to_memory([](ContainerWriter&) {}, opt); }).empty());
  // finish() inside fill is fine.
  const auto a = write_to_memory([](ContainerWriter& w) { w.finish(); });
  CHECK(a == write_to_memory([](ContainerWriter&) {}));
}

// ---- atomic save ----------------------------------------------------------------

TEST_CASE("a failing save leaves the old file and no temporary file" * doctest::test_suite("persist")) {
  rabitq_test::TempDir dir("rabitq-persist");
  const std::string path = dir.file("index.rbq");
  const auto old_sections = sample_sections(20, 5000);
  write_file_atomically(path, [&](ContainerWriter& w) { fill_sections(w, old_sections, 1); });
  const auto old_bytes = slurp(path);

  // fill throws after writing more than the buffer: the exception passes
  // through unchanged.
  std::string msg;
  try {
    write_file_atomically(path, [&](ContainerWriter& w) {
      w.begin_section(kVecs);
      std::vector<uint8_t> junk(3 << 20, 0xab);
      w.write(junk.data(), junk.size());
      throw std::runtime_error("fill failed on purpose");
    });
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  CHECK_MESSAGE(msg == "fill failed on purpose", msg);
  CHECK(slurp(path) == old_bytes);
  CHECK(dir.temp_files() == 0);

  // Misuse inside fill (section left open) also cleans up.
  CHECK(!error_of([&] { write_file_atomically(path, [](ContainerWriter& w) { w.begin_section(kMeta); }); }).empty());
  CHECK(slurp(path) == old_bytes);
  CHECK(dir.temp_files() == 0);

  // A missing folder: the error names the path and the OS error.
  ErrorKind kind = ErrorKind::kFormat;
  const std::string missing = dir.file("no/such/folder/index.rbq");
  msg = error_of([&] { write_file_atomically(missing, [](ContainerWriter&) {}); }, &kind);
  CHECK_MESSAGE((kind == ErrorKind::kGeneric && contains(msg, missing) && contains(msg, std::strerror(ENOENT))), msg);

  // The target is a folder: the rename fails, nothing is left behind.
  const std::string sub = dir.file("sub");
  CHECK(::mkdir(sub.c_str(), 0700) == 0);
  msg = error_of([&] { write_file_atomically(sub, [](ContainerWriter&) {}); });
  CHECK_MESSAGE((contains(msg, sub) && contains(msg, "renam")), msg);
  CHECK(dir.temp_files() == 0);
  CHECK(::rmdir(sub.c_str()) == 0);
  CHECK(contains(error_of([&] { write_file_atomically(dir.path() + "/", [](ContainerWriter&) {}); }), "folder"));

  // The disk fills up (simulated with the file-size limit: writes past it
  // fail with EFBIG once SIGXFSZ is ignored).
  struct rlimit saved;
  CHECK(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  void (*old_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 1 << 20;
  if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max >= small.rlim_cur) {
    CHECK(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    msg = error_of([&] {
      write_file_atomically(path, [&](ContainerWriter& w) { fill_sections(w, sample_sections(21, 3 << 20), 1); });
    });
    ::setrlimit(RLIMIT_FSIZE, &saved);
    CHECK_MESSAGE((contains(msg, path) && contains(msg, std::strerror(EFBIG))), msg);
    CHECK(slurp(path) == old_bytes);
    CHECK(dir.temp_files() == 0);
  }
  ::signal(SIGXFSZ, old_handler);
}

TEST_CASE("SIGKILL during saves leaves the target old or new, whole" * doctest::test_suite("persist")) {
  rabitq_test::TempDir dir("rabitq-persist");
  const std::string path = dir.file("index.rbq");
  // Two versions, large enough that a kill usually lands mid-save.
  const auto a_sections = sample_sections(30, 4 << 20);
  const auto b_sections = sample_sections(31, 3 << 20);
  const auto a = write_to_memory([&](ContainerWriter& w) { fill_sections(w, a_sections, 1); });
  const auto b = write_to_memory([&](ContainerWriter& w) { fill_sections(w, b_sections, 1); });
  spit(path, a);
  rabitq_test::Rng rng(99);
  size_t saw_a = 0, saw_b = 0, interrupted = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      // Child: save b and a alternately until killed.
      for (int i = 0;; ++i) {
        try {
          write_file_atomically(path,
                                [&](ContainerWriter& w) { fill_sections(w, i % 2 ? a_sections : b_sections, 1); });
        } catch (...) {
          ::_exit(3);
        }
      }
    }
    CHECK(pid > 0);
    if (pid < 0) return;
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng.below(60000)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL), "child exited on its own, status " << status);
    const auto now = slurp(path);
    const bool is_a = now == a, is_b = now == b;
    saw_a += is_a;
    saw_b += is_b;
    CHECK_MESSAGE((is_a || is_b), "round " << round << ": target is neither version (" << now.size() << " bytes)");
    CHECK(Container::parse(Blob::read_file(path), path).sections().size() == 4);
    // Killed saves may leave their temporary file (never the target).
    bool left_temp = false;
    for (const auto& f : dir.files()) {
      if (f.find(".tmp-") != std::string::npos) {
        left_temp = true;
        ::unlink(dir.file(f).c_str());
      }
    }
    interrupted += left_temp;
  }
  std::printf("  (%zu SIGKILLs landed mid-save; the target was the first version %zu times, the second %zu)\n",
              interrupted, saw_a, saw_b);
}

// ---- Blob ----------------------------------------------------------------------

TEST_CASE("Blob: missing, empty, folder, and copies" * doctest::test_suite("persist")) {
  rabitq_test::TempDir dir("rabitq-persist");
  const std::string missing = dir.file("missing.rbq");
  for (bool map : {false, true}) {
    ErrorKind kind = ErrorKind::kFormat;
    std::string m = error_of([&] { map ? Blob::map_file(missing) : Blob::read_file(missing); }, &kind);
    CHECK_MESSAGE((kind == ErrorKind::kGeneric && contains(m, missing) && contains(m, std::strerror(ENOENT))), m);

    const std::string empty = dir.file("empty.rbq");
    spit(empty, {});
    m = error_of([&] { map ? Blob::map_file(empty) : Blob::read_file(empty); }, &kind);
    CHECK_MESSAGE((kind == ErrorKind::kFormat && contains(m, empty) && contains(m, "empty")), m);

    m = error_of([&] { map ? Blob::map_file(dir.path()) : Blob::read_file(dir.path()); }, &kind);
    CHECK_MESSAGE((kind == ErrorKind::kGeneric && contains(m, dir.path()) && contains(m, std::strerror(EISDIR))), m);

    const std::string one = dir.file("one.bin");
    spit(one, {42});
    auto blob = map ? Blob::map_file(one) : Blob::read_file(one);
    CHECK((blob->size() == 1 && blob->data()[0] == 42 && blob->mapped() == map));
    const std::string m2 = error_of([&] { Container::parse(blob, one); });
    CHECK_MESSAGE((contains(m2, one) && contains(m2, "truncated")), m2);
  }
  auto zero = Blob::copy_of(nullptr, 0);
  CHECK((zero->size() == 0 && zero->data() != nullptr && !zero->mapped()));
  const uint8_t src[5] = {1, 2, 3, 4, 5};
  auto c = Blob::copy_of(src + 1, 3);
  CHECK((c->size() == 3 && c->data()[0] == 2 && c->data()[2] == 4));
  CHECK(reinterpret_cast<uintptr_t>(c->data()) % 64 == 0);
}

}  // namespace
