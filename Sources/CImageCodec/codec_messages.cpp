// Messages that libjpeg and libpng would print to stderr, captured per thread instead.
//
// OpenCV creates its libjpeg and libpng decoders with the libraries' default message handlers, which
// print ("Corrupt JPEG data: premature end of data segment", "libpng error: ...") straight to stderr,
// between our progress lines and with no file name. OpenCV offers no hook for them, so this file
// defines the two library entry points OpenCV calls to set those handlers up (`jpeg_std_error`,
// `png_create_read_struct`). The executable's definitions take precedence over the shared libraries'
// for every caller (ELF symbol interposition); each forwards to the library's own function
// (dlsym RTLD_NEXT) and only swaps the print-to-stderr handlers for ones that keep the text in a
// thread-local buffer. OpenCV itself writes some decode errors to std::cerr ("imdecode_(''): can't
// read data: ..."): std::cerr gets a stream buffer that, on a thread inside cic_decode, keeps the
// text in the same buffer, and passes everything else through to the original. cic_decode clears the
// buffer before a decode and reads it after, so each message lands in the failure reason (or
// warning) of the file that caused it.
#include "internal.hpp"

#include <dlfcn.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <streambuf>

#include <jpeglib.h>

namespace {

thread_local std::string captured;
thread_local bool capturing = false;
thread_local std::string cerrLine;   // OpenCV's std::cerr text on this thread, up to its newline

void append(const char *library, const char *text) {
    if (captured.size() > 400) return;   // enough to say what went wrong
    if (!captured.empty()) captured += "; ";
    captured += library;
    captured += ": ";
    captured += text;
}

template <typename Fn> Fn next(const char *name) {
    void *symbol = dlsym(RTLD_NEXT, name);
    if (symbol == nullptr) {
        std::fprintf(stderr, "CImageCodec: %s not found in the loaded libraries (%s)\n", name, dlerror());
        std::abort();
    }
    return reinterpret_cast<Fn>(symbol);
}

extern "C" void captureJPEGMessage(j_common_ptr cinfo) {
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    append("libjpeg", buffer);
}

// libpng's callback types, declared here so the shim needs no png.h (OpenCV brings libpng itself).
using PNGMessage = void (*)(void *png, const char *message);
using PNGCreate = void *(*)(const char *version, void *errorData, PNGMessage onError, PNGMessage onWarning);
using PNGLongJump = void (*)(void *png, int value);

extern "C" void capturePNGWarning(void *, const char *message) { append("libpng warning", message); }

extern "C" [[noreturn]] void capturePNGError(void *png, const char *message) {
    append("libpng", message);
    static const PNGLongJump jump = next<PNGLongJump>("png_longjmp");
    jump(png, 1);   // what libpng's default handler does after printing; never returns
    std::abort();
}

/// std::cerr's buffer: text written on a capturing thread is kept (per line, as "OpenCV: ..."); other
/// text goes to the original buffer, unchanged.
class CapturingBuffer : public std::streambuf {
public:
    explicit CapturingBuffer(std::streambuf *original) : original(original) {}

protected:
    int overflow(int c) override {
        if (c == traits_type::eof()) return traits_type::not_eof(c);
        const char ch = char(c);
        xsputn(&ch, 1);
        return c;
    }
    std::streamsize xsputn(const char *s, std::streamsize n) override {
        if (!capturing) {
            std::lock_guard<std::mutex> lock(mutex);
            return original->sputn(s, n);
        }
        for (std::streamsize i = 0; i < n; ++i) {
            if (s[i] != '\n') { if (cerrLine.size() < 400) cerrLine += s[i]; continue; }
            flushLine();
        }
        return n;
    }
    int sync() override {
        if (capturing) return 0;
        std::lock_guard<std::mutex> lock(mutex);
        return original->pubsync();
    }

public:
    static void flushLine() {
        std::string line;
        line.swap(cerrLine);
        const std::string prefix = "imdecode_(''): ";
        if (line.compare(0, prefix.size(), prefix) == 0) line.erase(0, prefix.size());
        if (!line.empty()) append("OpenCV", line.c_str());
    }

private:
    std::streambuf *original;
    std::mutex mutex;
};

const bool cerrCaptureInstalled = [] {
    static std::ios_base::Init init;   // std::cerr exists before we replace its buffer
    std::cerr.rdbuf(new CapturingBuffer(std::cerr.rdbuf()));
    return true;
}();

}  // namespace

namespace cic {
void clearCodecMessages() {
    captured.clear();
    cerrLine.clear();
    capturing = true;
}
void endCodecMessages() { capturing = false; }
std::string takeCodecMessages() {
    CapturingBuffer::flushLine();
    std::string text;
    text.swap(captured);
    return text;
}
}  // namespace cic

extern "C" struct jpeg_error_mgr *jpeg_std_error(struct jpeg_error_mgr *err) {
    static const auto real = next<struct jpeg_error_mgr *(*)(struct jpeg_error_mgr *)>("jpeg_std_error");
    struct jpeg_error_mgr *manager = real(err);
    manager->output_message = captureJPEGMessage;
    return manager;
}

extern "C" void *png_create_read_struct(const char *version, void *errorData, PNGMessage onError, PNGMessage onWarning) {
    static const auto real = next<PNGCreate>("png_create_read_struct");
    // Only the default (printing) handlers are replaced; a caller's own handlers stay.
    return real(version, errorData, onError ? onError : capturePNGError, onWarning ? onWarning : capturePNGWarning);
}
