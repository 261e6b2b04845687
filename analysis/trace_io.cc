#include "analysis/trace_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/evp.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace flotilla::analysis {

namespace {

std::string hex(const unsigned char* d, unsigned n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (unsigned i = 0; i < n; ++i) {
    out.push_back(kHex[d[i] >> 4]);
    out.push_back(kHex[d[i] & 15]);
  }
  return out;
}

constexpr size_t kFlushBytes = 1 << 20;

}  // namespace

struct FileTraceSink::Digest {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Digest() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~Digest() { EVP_MD_CTX_free(ctx); }
  void update(const std::string& bytes) { EVP_DigestUpdate(ctx, bytes.data(), bytes.size()); }
  std::string hex_now() const {
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    EVP_MD_CTX_copy_ex(copy, ctx);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(copy, out, &n);
    EVP_MD_CTX_free(copy);
    return hex(out, n);
  }
};

StatusOr<std::unique_ptr<FileTraceSink>> FileTraceSink::open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return Status(StatusCode::kUnavailable,
                  "cannot write trace " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<FileTraceSink>(new FileTraceSink(f, path));
}

FileTraceSink::FileTraceSink(std::FILE* f, std::string path)
    : file_(f), path_(std::move(path)), digest_(std::make_unique<Digest>()) {
  buffer_.reserve(kFlushBytes + 4096);
}

FileTraceSink::~FileTraceSink() { (void)close(); }

void FileTraceSink::record(const trace::Record& r) {
  scratch_.clear();
  {
    google::protobuf::io::StringOutputStream sos(&scratch_);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    cos.WriteVarint32(static_cast<uint32_t>(r.ByteSizeLong()));
    r.SerializeWithCachedSizes(&cos);
  }
  digest_->update(scratch_);
  buffer_ += scratch_;
  ++records_;
  if (buffer_.size() >= kFlushBytes) flush_buffer();
}

void FileTraceSink::flush_buffer() {
  if (file_ != nullptr && !buffer_.empty() && error_.is_ok()) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
      error_ = Status(StatusCode::kUnavailable,
                      "writing trace " + path_ + ": " + std::strerror(errno));
    }
  }
  buffer_.clear();
}

Status FileTraceSink::close() {
  if (file_ == nullptr) return error_;
  flush_buffer();
  if (std::fclose(file_) != 0 && error_.is_ok()) {
    error_ = Status(StatusCode::kUnavailable, "closing trace " + path_ + ": " + std::strerror(errno));
  }
  file_ = nullptr;
  return error_;
}

std::string FileTraceSink::sha256_hex() const { return digest_->hex_now(); }

Status read_trace(const std::string& path,
                  const std::function<bool(const trace::Record&)>& visit) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    return Status(StatusCode::kNotFound, "cannot read trace " + path + ": " + std::strerror(errno));
  }
  google::protobuf::io::FileInputStream fis(fd);
  fis.SetCloseOnDelete(true);
  trace::Record r;
  int64_t index = 0;
  while (true) {
    google::protobuf::io::CodedInputStream cis(&fis);
    const void* data = nullptr;
    int available = 0;
    if (!cis.GetDirectBufferPointer(&data, &available)) break;  // clean end of file
    uint32_t size = 0;
    if (!cis.ReadVarint32(&size)) {
      return Status(StatusCode::kBadRequest,
                    path + ": record " + std::to_string(index) + ": torn length prefix");
    }
    if (size > (64u << 20)) {
      return Status(StatusCode::kBadRequest, path + ": record " + std::to_string(index) +
                                                 ": length " + std::to_string(size) +
                                                 " exceeds the 64 MiB record limit");
    }
    auto limit = cis.PushLimit(static_cast<int>(size));
    if (!r.ParseFromCodedStream(&cis) || !cis.ConsumedEntireMessage() ||
        cis.BytesUntilLimit() != 0) {
      return Status(StatusCode::kBadRequest,
                    path + ": record " + std::to_string(index) +
                        ": corrupt or truncated (" + std::to_string(size) + " bytes expected)");
    }
    cis.PopLimit(limit);
    ++index;
    if (!visit(r)) break;
  }
  return Status::ok();
}

std::string trace_type_name(trace::EventType type) {
  const std::string& upper = trace::EventType_Name(type);
  std::string out;
  bool start = true;
  for (char c : upper) {
    if (c == '_') {
      start = true;
    } else {
      out += start ? c : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      start = false;
    }
  }
  return out.empty() ? "Unknown" : out;
}

StatusOr<std::string> sha256_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Status(StatusCode::kNotFound, "cannot read " + path + ": " + std::strerror(errno));
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
  std::fclose(f);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_MD_CTX_free(ctx);
  return hex(out, len);
}

}  // namespace flotilla::analysis
