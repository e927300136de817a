/* certs_ensure(): the CA and serving certificate are made, valid for exactly the names asked for, kept
 * while valid, and remade when near expiry, when the names change or when a file is damaged. */
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certs.h"
#include "test-util.h"

static char dir[] = "/tmp/test-certs-XXXXXX";

static X509 *load(const char *file)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, file);
        FILE *f = fopen(p, "re");
        X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        return x;
}

static EVP_PKEY *load_key(const char *file)
{
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, file);
        FILE *f = fopen(p, "re");
        EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f)
                fclose(f);
        return k;
}

static mode_t mode_of(const char *file)
{
        char p[256];
        struct stat st = {0};
        snprintf(p, sizeof(p), "%s/%s", dir, file);
        stat(p, &st);
        return st.st_mode & 0777;
}

/* Days from now until the certificate's notAfter. */
static int days_left(X509 *x)
{
        int days = 0, secs = 0;
        ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x));
        return days;
}

static void check_serving(const char *const *hosts, size_t n, const char *other)
{
        X509 *ca = load(CERTS_CA_CRT), *crt = load(CERTS_TLS_CRT);
        EVP_PKEY *key = load_key(CERTS_TLS_KEY);
        CHECK(ca && crt && key);
        if (!ca || !crt || !key)
                return;
        CHECK(X509_check_private_key(crt, key) == 1);
        CHECK(X509_verify(crt, X509_get0_pubkey(ca)) == 1);
        CHECK(X509_check_ca(ca) >= 1);
        CHECK(X509_check_ca(crt) == 0);
        X509_STORE *store = X509_STORE_new();
        X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        X509_STORE_add_cert(store, ca);
        X509_STORE_CTX_init(ctx, store, crt, NULL);
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
        CHECK(X509_verify_cert(ctx) == 1);
        X509_STORE_CTX_free(ctx), X509_STORE_free(store);
        for (size_t i = 0; i < n; i++) {
                int ok = strchr(hosts[i], ':') || hosts[i][0] <= '9'
                             ? X509_check_ip_asc(crt, hosts[i], 0)
                             : X509_check_host(crt, hosts[i], 0, 0, NULL);
                if (ok != 1)
                        fprintf(stderr, "certificate not valid for %s\n", hosts[i]);
                CHECK(ok == 1);
        }
        CHECK(X509_check_host(crt, other, 0, 0, NULL) != 1);
        X509_free(ca), X509_free(crt), EVP_PKEY_free(key);
}

static int ensure(const char *names, unsigned days)
{
        kv_error err = {0};
        int r = certs_ensure(dir, names, days, &err);
        if (r < 0)
                fprintf(stderr, "certs_ensure: %s\n", err.msg);
        return r;
}

static bool same_cert(X509 *a, const char *file)
{
        X509 *b = load(file);
        bool same = a && b && X509_cmp(a, b) == 0;
        X509_free(b);
        return same;
}

int main(void)
{
        if (!mkdtemp(dir))
                return 1;
        static const char *const names1[] = {"virt-api.kubevirt.svc", "virt-api.kubevirt.svc.cluster.local",
                                             "127.0.0.1"};
        const char *csv1 = "virt-api.kubevirt.svc, virt-api.kubevirt.svc.cluster.local,127.0.0.1";

        CHECK(ensure(csv1, 30) == 1);
        check_serving(names1, ARRAY_SIZE(names1), "evil.example.com");
        CHECK(mode_of(CERTS_TLS_KEY) == 0600 && mode_of(CERTS_CA_KEY) == 0600);
        X509 *ca = load(CERTS_CA_CRT), *crt = load(CERTS_TLS_CRT);
        CHECK(ca && days_left(ca) >= 59 && crt && days_left(crt) >= 29 && days_left(crt) <= 30);

        /* Still valid for long enough: kept as they are. */
        CHECK(ensure(csv1, 30) == 0);
        CHECK(same_cert(ca, CERTS_CA_CRT) && same_cert(crt, CERTS_TLS_CRT));

        /* Other names: a new serving certificate under the same CA (the caBundle stays). */
        static const char *const names2[] = {"virt-api.kvlite.svc"};
        CHECK(ensure("virt-api.kvlite.svc", 30) == 1);
        check_serving(names2, 1, "virt-api.kubevirt.svc");
        CHECK(same_cert(ca, CERTS_CA_CRT) && !same_cert(crt, CERTS_TLS_CRT));

        /* Near expiry: made for 1 day, then asked to last 30 → less than a fifth left → both remade. */
        X509_free(ca), X509_free(crt);
        CHECK(ensure("virt-api.kvlite.svc", 1) == 0); /* a shorter lifetime: the current ones still fit */
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", dir, CERTS_CA_CRT), unlink(p);
        CHECK(ensure("virt-api.kvlite.svc", 1) == 1);
        ca = load(CERTS_CA_CRT), crt = load(CERTS_TLS_CRT);
        CHECK(ca && days_left(ca) <= 2 && crt && days_left(crt) <= 1);
        CHECK(ensure("virt-api.kvlite.svc", 1) == 0);
        CHECK(ensure("virt-api.kvlite.svc", 30) == 1);
        CHECK(!same_cert(ca, CERTS_CA_CRT) && !same_cert(crt, CERTS_TLS_CRT));
        X509_free(ca), X509_free(crt);
        ca = load(CERTS_CA_CRT), crt = load(CERTS_TLS_CRT);
        CHECK(ca && days_left(ca) >= 59 && crt && days_left(crt) >= 29);
        check_serving(names2, 1, "virt-api.kubevirt.svc");

        /* A damaged serving certificate is remade; the CA is kept. */
        snprintf(p, sizeof(p), "%s/%s", dir, CERTS_TLS_CRT);
        FILE *f = fopen(p, "we");
        fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f);
        fclose(f);
        CHECK(ensure("virt-api.kvlite.svc", 30) == 1);
        CHECK(same_cert(ca, CERTS_CA_CRT));
        check_serving(names2, 1, "virt-api.kubevirt.svc");
        X509_free(ca), X509_free(crt);

        /* virt-handler's console-channel certificate: signed by the same CA, for its own name only, kept
         * while valid, remade when the CA changes (docs/console.md). */
        ca = load(CERTS_CA_CRT);
        kv_error perr = {0};
        const char *hnames = "virt-handler.kvlite.svc";
        CHECK(certs_ensure_peer(dir, CERTS_HANDLER_CRT, CERTS_HANDLER_KEY, hnames, 30, &perr) == 1);
        X509 *h = load(CERTS_HANDLER_CRT);
        EVP_PKEY *hkey = load_key(CERTS_HANDLER_KEY);
        CHECK(h && hkey && X509_check_private_key(h, hkey) == 1 && X509_verify(h, X509_get0_pubkey(ca)) == 1);
        CHECK(X509_check_host(h, "virt-handler.kvlite.svc", 0, 0, NULL) == 1 &&
              X509_check_host(h, "virt-api.kvlite.svc", 0, 0, NULL) != 1);
        CHECK(mode_of(CERTS_HANDLER_KEY) == 0600);
        CHECK(certs_ensure_peer(dir, CERTS_HANDLER_CRT, CERTS_HANDLER_KEY, hnames, 30, &perr) == 0);
        CHECK(same_cert(h, CERTS_HANDLER_CRT));
        snprintf(p, sizeof(p), "%s/%s", dir, CERTS_CA_CRT), unlink(p);
        CHECK(ensure("virt-api.kvlite.svc", 30) == 1); /* a new CA */
        CHECK(certs_ensure_peer(dir, CERTS_HANDLER_CRT, CERTS_HANDLER_KEY, hnames, 30, &perr) == 1);
        CHECK(!same_cert(h, CERTS_HANDLER_CRT));
        X509_free(h), X509_free(ca), EVP_PKEY_free(hkey);
        h = load(CERTS_HANDLER_CRT), ca = load(CERTS_CA_CRT);
        CHECK(h && ca && X509_verify(h, X509_get0_pubkey(ca)) == 1);
        X509_free(h), X509_free(ca);

        /* Bad arguments name what is wrong. */
        kv_error err = {0};
        CHECK(certs_ensure(dir, "bad name!", 30, &err) == -EINVAL && strstr(err.msg, "bad name!"));
        CHECK(certs_ensure(dir, "", 30, &err) == -EINVAL);
        CHECK(certs_ensure(dir, "a.svc,DNS:x", 30, &err) == -EINVAL);
        CHECK(certs_ensure(dir, "a.svc", 0, &err) == -EINVAL && strstr(err.msg, "validity"));

        static const char *const files[] = {CERTS_CA_CRT,  CERTS_CA_KEY,      CERTS_TLS_CRT,
                                            CERTS_TLS_KEY, CERTS_HANDLER_CRT, CERTS_HANDLER_KEY};
        for (size_t i = 0; i < ARRAY_SIZE(files); i++)
                snprintf(p, sizeof(p), "%s/%s", dir, files[i]), unlink(p);
        rmdir(dir);
        return test_result("virt-api-certs");
}
