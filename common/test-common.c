/* Unit tests for the error object, JSON escaping, strv, base64 decoding, SHA-256 and kv_memtrim. */
#include "base64.h"
#include "ctl-protocol.h"
#include "error.h"
#include "jsonesc.h"
#include "memtrim.h"
#include "portfwd.h"
#include "sha256.h"
#include "strv.h"
#include "wsframe.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test-util.h"

static void test_error(void)
{
        kv_error err = {0};
        CHECK(kv_error_set(&err, EINVAL, "spec.domain.memory.guest: %s", "bad") == -EINVAL);
        CHECK(strcmp(err.msg, "spec.domain.memory.guest: bad") == 0);
        CHECK(kv_error_wrap(&err, "vmi %s", "demo") == -EINVAL);
        CHECK(strcmp(err.msg, "vmi demo: spec.domain.memory.guest: bad") == 0);
        CHECK(kv_error_errno(&err, ENOENT, "open %s", "/x") == -ENOENT);
        CHECK(strcmp(err.msg, "open /x: No such file or directory") == 0);
        CHECK(kv_error_set(NULL, EIO, "x") == -EIO);
}

static void test_escape(void)
{
        char out[64];
        CHECK(strcmp(json_escape("a\"b\\c\n\x01", out, sizeof(out)), "a\\\"b\\\\c\\n\\u0001") == 0);
        CHECK(strcmp(json_escape("abcdef", out, 4), "abc") == 0);
        CHECK(strcmp(json_escape("\"\"", out, 4), "\\\"") == 0); /* never splits an escape */
}

static void test_strv(void)
{
        strv s = {0};
        for (int i = 0; i < 100; i++)
                CHECK(strv_pushf(&s, "arg%d", i) == 0);
        CHECK(s.n == 100);
        CHECK(strcmp(s.v[42], "arg42") == 0);
        CHECK(s.v[100] == NULL);
        strv_free(&s);
        CHECK(s.v == NULL && s.n == 0);
}

/* Decodes in with flags; returns the error, or 0 with the text compared against want (wantlen bytes). */
static int b64(const char *in, unsigned flags, const char *want, size_t wantlen)
{
        char *out = NULL;
        size_t n = 0;
        int r = base64_decode(in, flags, &out, &n);
        if (r == 0) {
                CHECK(n == wantlen && memcmp(out, want, n) == 0 && out[n] == '\0');
                free(out);
        } else {
                CHECK(out == NULL);
        }
        return r;
}

static void test_base64(void)
{
        CHECK(b64("aGVsbG8=", 0, "hello", 5) == 0);
        CHECK(b64("aGVsbG8", 0, "hello", 5) == 0);                         /* padding optional */
        CHECK(b64("aGVs\nbG8g\r\n d29y bGQ=", 0, "hello world", 11) == 0); /* whitespace ignored */
        CHECK(b64("", 0, "", 0) == 0);
        CHECK(b64("+/+/", 0, "\xfb\xff\xbf", 3) == 0);
        CHECK(b64("aGVsbG8%", 0, NULL, 0) == -EINVAL);     /* outside the alphabet */
        CHECK(b64("aGVs-G8=", 0, NULL, 0) == -EINVAL);     /* base64url is another alphabet */
        CHECK(b64("aGVsbG8=aGVs", 0, NULL, 0) == -EINVAL); /* data after padding */
        CHECK(b64("a", 0, NULL, 0) == -EINVAL);            /* 6 dangling bits */
        CHECK(b64("aGVsbG8==", 0, NULL, 0) == -EINVAL);    /* padding past the quantum */
        CHECK(b64("aGU===", 0, NULL, 0) == -EINVAL);
        CHECK(b64("AGI=", 0, "\0b", 2) == 0);                /* binary data may hold a NUL ... */
        CHECK(b64("AGI=", BASE64_TEXT, NULL, 0) == -EINVAL); /* ... text may not */
        CHECK(b64("aGk=", BASE64_TEXT, "hi", 2) == 0);
}

static void test_ctl_verbs(void)
{
        for (int v = 0; v < CTL_VERB__MAX; v++) {
                CHECK(ctl_verb_from_name(ctl_verb_name(v)) == v); /* names are unique */
                CHECK(ctl_verb_summary(v) && *ctl_verb_summary(v));
        }
        CHECK(ctl_verb_from_name("migration-target") == CTL_VERB_MIGRATION_TARGET);
        CHECK(ctl_verb_from_name("migrate-target") == -1); /* the old name of the liveops driver */
        CHECK(ctl_verb_from_name(NULL) == -1);
        CHECK(ctl_verb_name(CTL_VERB__MAX) == NULL);
}

/* Websocket frames: a client's masked frame parses back on the server side at each length encoding;
 * partial input waits, a wrongly masked or oversized frame is refused. */
static void test_wsframe(void)
{
        static uint8_t buf[70000 + WS_HEADER_MAX];
        const uint8_t mask[4] = {1, 2, 3, 4};
        const size_t lens[] = {0, 5, 125, 126, 65535, 65536, 70000};
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                size_t h = ws_frame_header(buf, WS_BINARY, lens[i], mask);
                for (size_t j = 0; j < lens[i]; j++)
                        buf[h + j] = (uint8_t)(j * 7);
                ws_mask(buf + h, lens[i], mask);
                ws_frame f;
                CHECK(ws_frame_parse(buf, h + lens[i] - (lens[i] ? 1 : 0), true, &f) ==
                      (lens[i] ? 0 : (long)h));
                CHECK(ws_frame_parse(buf, h + lens[i], false, &f) == -EPROTO);
                CHECK(ws_frame_parse(buf, h + lens[i], true, &f) == (long)(h + lens[i]));
                CHECK(f.opcode == WS_BINARY && f.fin && f.len == lens[i]);
                CHECK(lens[i] < 2 ||
                      (f.payload[1] == 7 && f.payload[lens[i] - 1] == (uint8_t)((lens[i] - 1) * 7)));
        }
        size_t h = ws_frame_header(buf, WS_CLOSE, 2, NULL);
        CHECK(h == 2 && buf[0] == 0x88 && buf[1] == 2);
        CHECK(ws_frame_parse(buf, 1, false, &(ws_frame){0}) == 0);
        h = ws_frame_header(buf, WS_BINARY, WS_PAYLOAD_MAX + 1, NULL);
        CHECK(ws_frame_parse(buf, h, false, &(ws_frame){0}) == -EMSGSIZE);
        buf[0] |= 0x40; /* RSV1 without an extension */
        CHECK(ws_frame_parse(buf, h, false, &(ws_frame){0}) == -EPROTO);
}

/* FIPS 180-4's examples (empty, "abc", the 448-bit message, a million 'a'), and lengths around the padding's
 * block boundaries (55/56: the length fits in the last block or not; 64, 119, 120). */
static void test_sha256(void)
{
        static char big[1000000];
        memset(big, 'a', sizeof(big));
        const struct {
                const char *in;
                size_t len;
                const char *hex;
        } v[] = {
            {"", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            {"abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
            {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
            {big, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
            {big, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
            {big, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
            {big, 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
            {big, 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
            {big, sizeof(big), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                unsigned char md[SHA256_LEN];
                char hex[2 * SHA256_LEN + 1];
                sha256(v[i].in, v[i].len, md);
                for (int j = 0; j < SHA256_LEN; j++)
                        snprintf(hex + 2 * j, 3, "%02x", md[j]);
                CHECK(strcmp(hex, v[i].hex) == 0);
        }
}

#if defined(__SANITIZE_ADDRESS__)
#define MEMTRIM_HEAP_CHECKED 0 /* ASan's allocator, not glibc's heap */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMTRIM_HEAP_CHECKED 0
#endif
#endif
#ifndef MEMTRIM_HEAP_CHECKED
#define MEMTRIM_HEAP_CHECKED 1
#endif

/* Resident anonymous KiB (smaps_rollup walks the page tables). Not statm's resident count: that also counts
 * library code kv_memtrim's first call faults in, 64 KiB around each page (fault-around), and its counters
 * are cached per thread and may lag by up to 64 faults: either can hide what kv_memtrim gives back. */
static long resident_kib(void)
{
        long kib = 0;
        char line[256];
        FILE *f = fopen("/proc/self/smaps_rollup", "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Anonymous: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* Touches 1 MiB of stack below the caller and returns. */
__attribute__((noinline)) static int deep_stack(void)
{
        volatile char big[1 << 20];
        for (size_t i = 0; i < sizeof(big); i += 512)
                big[i] = (char)i;
        return big[4096];
}

/* What a burst leaves behind goes back: 1 MiB of stack a returned call touched, then 8 MiB of small blocks
 * freed below a block still in use (so free() cannot shrink the heap from its top). */
static void test_memtrim(void)
{
        CHECK(deep_stack() == 0);
        long before = resident_kib();
        kv_memtrim();
        CHECK(before - resident_kib() > 768);

        enum { N = 8192, SIZE = 1024 };
        static char *blocks[N];
        for (int i = 0; i < N; i++) { /* written through volatile: not a dead store the compiler drops */
                volatile char *b = malloc(SIZE);
                for (int j = 0; b && j < SIZE; j += 64)
                        b[j] = 1;
                blocks[i] = (char *)b;
        }
        volatile char *pin = malloc(SIZE);
        if (pin)
                pin[0] = 1;
        for (int i = 0; i < N; i++)
                free(blocks[i]);
        before = resident_kib();
        kv_memtrim();
        if (MEMTRIM_HEAP_CHECKED) /* ASan keeps freed memory in quarantine, outside glibc's heap */
                CHECK(before - resident_kib() > 6 * 1024);
        free((char *)pin);
        kv_memtrim(); /* twice in a row: nothing left to do, nothing breaks */
        CHECK(deep_stack() == 0);
}

static void test_portfwd(void)
{
        pf_request r = {.pod_uid = "0a1b-2c3d",
                        .protocol = "tcp",
                        .address = "10.0.2.2",
                        .port = 8080,
                        .device = "k6t-eth0"},
                   back;
        char line[PF_LINE_MAX];
        CHECK(pf_request_format(&r, line, sizeof(line)) == 49);
        CHECK_STR(line, "portforward 0a1b-2c3d tcp 10.0.2.2 8080 k6t-eth0\n");
        line[strlen(line) - 1] = 0;
        CHECK(pf_request_parse(line, &back) == 0);
        CHECK(memcmp(&r, &back, sizeof(r)) == 0);
        CHECK(pf_request_parse("portforward 0a1b udp 127.0.0.1 65535 -", &back) == 0);
        CHECK(back.port == 65535 && !back.device[0] && !strcmp(back.protocol, "udp"));
        r.device[0] = 0;
        CHECK(pf_request_format(&r, line, sizeof(line)) > 0);
        CHECK_STR(line, "portforward 0a1b-2c3d tcp 10.0.2.2 8080 -\n");
        CHECK(pf_request_format(&r, line, 20) == -ENOBUFS);
        static const char *const bad[] = {"",
                                          "portforward",
                                          "console 0a1b tcp 10.0.2.2 80 -",
                                          "portforward 0a1b tcp 10.0.2.2 80",
                                          "portforward 0a1b tcp 10.0.2.2 80 - extra",
                                          "portforward 0a1b tcp 10.0.2.2 80 - ",
                                          "portforward  0a1b tcp 10.0.2.2 80 -",
                                          "portforward ../x tcp 10.0.2.2 80 -",
                                          "portforward 0a1b sctp 10.0.2.2 80 -",
                                          "portforward 0a1b tcp 10.0.2 80 -",
                                          "portforward 0a1b tcp ::1 80 -",
                                          "portforward 0a1b tcp 10.0.2.2 0 -",
                                          "portforward 0a1b tcp 10.0.2.2 080 -",
                                          "portforward 0a1b tcp 10.0.2.2 65536 -",
                                          "portforward 0a1b tcp 10.0.2.2 +80 -",
                                          "portforward 0a1b tcp 10.0.2.2 80 eth0;x",
                                          "portforward 0a1b tcp 10.0.2.2 80 0123456789abcdefg"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                CHECK_MSG(pf_request_parse(bad[i], &back) == -EINVAL, bad[i]);
        pf_request bad_uid = r;
        snprintf(bad_uid.pod_uid, sizeof(bad_uid.pod_uid), "x y");
        CHECK(pf_request_format(&bad_uid, line, sizeof(line)) == -EINVAL);
}

int main(void)
{
        test_error();
        test_escape();
        test_strv();
        test_base64();
        test_ctl_verbs();
        test_wsframe();
        test_sha256();
        test_memtrim();
        test_portfwd();
        if (test_failures)
                fprintf(stderr, "%d failures\n", test_failures);
        return test_failures ? 1 : 0;
}
