/* certs: a self-signed CA and the serving certificate for virt-api's Service, made and renewed with
 * OpenSSL's libcrypto (certs.h). */
#include "certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

#define CERTS_MAX_NAMES 32
#define CERTS_CA_CN "kvlite.io"

static void x509_freep(X509 **x)
{
        X509_free(*x);
}
static void pkey_freep(EVP_PKEY **k)
{
        EVP_PKEY_free(*k);
}
#define _cleanup_x509_ _cleanup_(x509_freep)
#define _cleanup_pkey_ _cleanup_(pkey_freep)

typedef struct names {
        char *buf; /* the csv copy the entries point into */
        const char *v[CERTS_MAX_NAMES];
        size_t n;
} names;

static bool is_ip(const char *s)
{
        unsigned char a[16];
        return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static bool is_dns_name(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
                        return false;
        return true;
}

static int names_parse(const char *csv, names *out, kv_error *err)
{
        *out = (names){0};
        if (!csv || !(out->buf = strdup(csv)))
                return kv_error_set(err, csv ? ENOMEM : EINVAL, "DNS names: none given");
        char *save = NULL;
        for (char *t = strtok_r(out->buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                t += strspn(t, " ");
                for (size_t l = strlen(t); l > 0 && t[l - 1] == ' ';)
                        t[--l] = '\0';
                if (!is_dns_name(t) && !is_ip(t))
                        return kv_error_set(err, EINVAL,
                                            "DNS names: \"%.64s\" is neither a DNS name nor an IP", t);
                if (out->n == CERTS_MAX_NAMES)
                        return kv_error_set(err, EINVAL, "DNS names: more than %d", CERTS_MAX_NAMES);
                out->v[out->n++] = t;
        }
        if (!out->n)
                return kv_error_set(err, EINVAL, "DNS names: none given");
        return 0;
}

static void names_done(names *n)
{
        free(n->buf);
}

static void join_path(char out[static 4096], const char *dir, const char *file)
{
        snprintf(out, 4096, "%s/%s", dir, file);
}

static X509 *cert_load(const char *dir, const char *file)
{
        char p[4096];
        join_path(p, dir, file);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        return f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
}

static EVP_PKEY *key_load(const char *dir, const char *file)
{
        char p[4096];
        join_path(p, dir, file);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        return f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
}

/* Write through a temporary file and rename, so a reader never sees half a PEM. */
static int pem_store(const char *dir, const char *file, X509 *cert, EVP_PKEY *key, kv_error *err)
{
        char p[4096], tmp[4200];
        join_path(p, dir, file);
        snprintf(tmp, sizeof(tmp), "%s.tmp", p);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, key ? 0600 : 0644);
        if (fd < 0)
                return kv_error_errno(err, errno, "create %s", tmp);
        FILE *f = fdopen(fd, "w");
        if (!f) {
                close(fd);
                return kv_error_errno(err, errno, "create %s", tmp);
        }
        bool ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
        ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
        if (fclose(f) != 0 || !ok) {
                unlink(tmp);
                return kv_error_set(err, EIO, "write %s", tmp);
        }
        if (rename(tmp, p) < 0)
                return kv_error_errno(err, errno, "rename %s", tmp);
        return 0;
}

/* Valid now and for at least a fifth of the wanted lifetime. */
static bool lifetime_left(const X509 *cert, unsigned validity_days)
{
        time_t now = time(NULL), soon = now + (time_t)validity_days * 86400 / 5;
        return X509_cmp_time(X509_get0_notBefore(cert), &now) < 0 &&
               X509_cmp_time(X509_get0_notAfter(cert), &soon) > 0;
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        bool ok = ext && X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        return ok;
}

static bool set_serial(X509 *cert)
{
        unsigned char raw[16];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
                return false;
        raw[0] &= 0x7f; /* positive */
        BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
        bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
        BN_free(bn);
        return ok;
}

static bool san_value(const names *n, char *out, size_t size)
{
        size_t len = 0;
        out[0] = '\0';
        for (size_t i = 0; i < n->n; i++) {
                int w = snprintf(out + len, size - len, "%s%s:%s", i ? "," : "",
                                 is_ip(n->v[i]) ? "IP" : "DNS", n->v[i]);
                if (w < 0 || (size_t)w >= size - len)
                        return false;
                len += w;
        }
        return true;
}

/* A certificate for key: the CA (issuer NULL: self-signed) or a serving certificate for n's names. */
static X509 *cert_make(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const names *n, unsigned days)
{
        _cleanup_x509_ X509 *c = X509_new();
        char san[8192];
        const char *cn = n ? n->v[0] : CERTS_CA_CN;
        if (!c)
                return NULL;
        X509_NAME *subject = X509_get_subject_name(c);
        if (!X509_set_version(c, 2) || !set_serial(c) ||
            !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) ||
            !X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : subject) ||
            !X509_gmtime_adj(X509_getm_notBefore(c), -300) ||
            !X509_time_adj_ex(X509_getm_notAfter(c), (int)days, 0, NULL) || !X509_set_pubkey(c, key))
                return NULL;
        X509 *signer = issuer ? issuer : c;
        bool ok = add_ext(c, signer, NID_subject_key_identifier, "hash") &&
                  add_ext(c, signer, NID_authority_key_identifier, "keyid:always");
        if (!n)
                ok = ok && add_ext(c, signer, NID_basic_constraints, "critical,CA:TRUE") &&
                     add_ext(c, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
        else
                ok = ok && san_value(n, san, sizeof(san)) &&
                     add_ext(c, signer, NID_basic_constraints, "critical,CA:FALSE") &&
                     add_ext(c, signer, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
                     add_ext(c, signer, NID_ext_key_usage, "serverAuth,clientAuth") &&
                     add_ext(c, signer, NID_subject_alt_name, san);
        if (!ok || !X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()))
                return NULL;
        return TAKE_PTR(c);
}

/* The serving certificate names exactly n: each name matches and there are no others. */
static bool names_match(X509 *cert, const names *n)
{
        GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
        int count = sans ? sk_GENERAL_NAME_num(sans) : 0;
        GENERAL_NAMES_free(sans);
        if (count != (int)n->n)
                return false;
        for (size_t i = 0; i < n->n; i++)
                if ((is_ip(n->v[i])
                         ? X509_check_ip_asc(cert, n->v[i], 0)
                         : X509_check_host(cert, n->v[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL)) != 1)
                        return false;
        return true;
}

static bool serving_ok(X509 *cert, EVP_PKEY *key, X509 *ca, const names *n, unsigned days)
{
        return cert && key && X509_check_private_key(cert, key) == 1 &&
               X509_check_issued(ca, cert) == X509_V_OK && X509_verify(cert, X509_get0_pubkey(ca)) == 1 &&
               lifetime_left(cert, days) && names_match(cert, n);
}

static int store_pair(const char *dir, const char *crt, const char *keyf, X509 *cert, EVP_PKEY *key,
                      kv_error *err)
{
        int r = pem_store(dir, keyf, NULL, key, err);
        return r < 0 ? r : pem_store(dir, crt, cert, NULL, err);
}

/* The certificate crt/key signed by ca for n's names, remade when not right or when force; 1 when written. */
static int leaf_ensure(const char *dir, const char *crt, const char *keyf, const names *n, X509 *ca,
                       EVP_PKEY *ca_key, unsigned days, bool force, kv_error *err)
{
        _cleanup_x509_ X509 *cert = cert_load(dir, crt);
        _cleanup_pkey_ EVP_PKEY *key = key_load(dir, keyf);
        if (!force && serving_ok(cert, key, ca, n, days))
                return 0;
        X509_free(cert), EVP_PKEY_free(key);
        cert = NULL;
        if (!(key = EVP_EC_gen("P-256")) || !(cert = cert_make(key, ca, ca_key, n, days)))
                return kv_error_set(err, EIO, "make the certificate %s", crt);
        int r = store_pair(dir, crt, keyf, cert, key, err);
        return r < 0 ? r : 1;
}

int certs_ensure(const char *dir, const char *service_dns_names_csv, unsigned validity_days, kv_error *err)
{
        _cleanup_(names_done) names n;
        int r = names_parse(service_dns_names_csv, &n, err);
        if (r < 0)
                return r;
        if (validity_days == 0 || validity_days > 36500)
                return kv_error_set(err, EINVAL, "validity: %u days is out of range [1, 36500]",
                                    validity_days);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return kv_error_errno(err, errno, "mkdir %s", dir);
        _cleanup_x509_ X509 *ca = cert_load(dir, CERTS_CA_CRT);
        _cleanup_pkey_ EVP_PKEY *ca_key = key_load(dir, CERTS_CA_KEY);
        bool wrote = false;
        /* The CA lives twice as long, so serving certificates renew several times under one caBundle. */
        unsigned ca_days = validity_days * 2;
        if (!ca || !ca_key || X509_check_private_key(ca, ca_key) != 1 || !lifetime_left(ca, ca_days)) {
                X509_free(ca), EVP_PKEY_free(ca_key);
                ca = NULL;
                if (!(ca_key = EVP_EC_gen("P-256")) || !(ca = cert_make(ca_key, NULL, NULL, NULL, ca_days)))
                        return kv_error_set(err, EIO, "make the CA certificate");
                if ((r = store_pair(dir, CERTS_CA_CRT, CERTS_CA_KEY, ca, ca_key, err)) < 0)
                        return r;
                wrote = true;
        }
        r = leaf_ensure(dir, CERTS_TLS_CRT, CERTS_TLS_KEY, &n, ca, ca_key, validity_days, wrote, err);
        return r < 0 ? r : (r || wrote);
}

int certs_ensure_peer(const char *dir, const char *crt, const char *key, const char *dns_names_csv,
                      unsigned validity_days, kv_error *err)
{
        _cleanup_(names_done) names n;
        int r = names_parse(dns_names_csv, &n, err);
        if (r < 0)
                return r;
        _cleanup_x509_ X509 *ca = cert_load(dir, CERTS_CA_CRT);
        _cleanup_pkey_ EVP_PKEY *ca_key = key_load(dir, CERTS_CA_KEY);
        if (!ca || !ca_key)
                return kv_error_set(err, ENOENT, "%s: no CA (certs_ensure first)", dir);
        return leaf_ensure(dir, crt, key, &n, ca, ca_key, validity_days, false, err);
}
