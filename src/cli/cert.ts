// TLS material for myftpd: `myftpd cert` makes a self-signed certificate in DATA/tls/, and `serve` finds the
// certificate and key to use (the --tls-cert/--tls-key flags, else DATA/tls/ when present).
//
// Generation runs the `openssl` binary: Node can parse X.509 certificates but not issue them, and openssl is on
// every machine that has TLS libraries at all.

import { execFile } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { isIP } from "node:net";
import { hostname } from "node:os";
import * as path from "node:path";
import { createSecureContext } from "node:tls";
import { promisify } from "node:util";
import { makeDirsSync } from "../core/dirs.js";
import { ConfigError } from "./settings.js";
import { UsageError } from "./user-admin.js";

const run = promisify(execFile);

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface LoadedTls extends TlsFiles {
  material: { cert: Buffer; key: Buffer };
}

/** Where `myftpd cert` writes and `serve` looks by default. */
export function defaultTlsFiles(dataDir: string): TlsFiles {
  const dir = path.join(dataDir, "tls");
  return { cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9*](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** subjectAltName entries: the host asked for, plus the loopback names so local clients can verify too. */
export function subjectAltNames(host: string): string[] {
  const names = [host, "localhost", "127.0.0.1", "::1"];
  const out: string[] = [];
  for (const n of names) {
    const entry = isIP(n) ? `IP:${n}` : `DNS:${n}`;
    if (!out.includes(entry)) out.push(entry);
  }
  return out;
}

export interface CertOptions {
  host?: string;
  days?: string | number;
  force?: boolean;
}

/** `myftpd cert`: writes DATA/tls/cert.pem and DATA/tls/key.pem (mode 0600) with a fresh self-signed certificate. */
export async function makeCertificate(dataDir: string, o: CertOptions = {}): Promise<string> {
  const host = (o.host ?? hostname()).trim();
  if (isIP(host) === 0 && !HOST_NAME.test(host)) throw new UsageError(`not a host name or IP address: ${JSON.stringify(host)}`);
  const days = o.days === undefined ? 825 : Number(o.days);
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new UsageError(`--days must be a whole number from 1 to 36500, got ${o.days}`);
  const files = defaultTlsFiles(dataDir);
  if (!o.force && (existsSync(files.cert) || existsSync(files.key))) {
    throw new UsageError(`${path.dirname(files.cert)} already holds a certificate or key; use --force to replace them`);
  }
  const dir = path.dirname(files.cert);
  makeDirsSync(dir, 0o700);
  const tmpKey = path.join(dir, `.key-${process.pid}.pem`);
  const tmpCert = path.join(dir, `.cert-${process.pid}.pem`);
  try {
    // The key file is created empty with mode 0600 first, so the key is never readable by others, whatever the umask.
    await (await fsp.open(tmpKey, "w", 0o600)).close();
    await fsp.chmod(tmpKey, 0o600);
    const cn = host.length <= 64 ? host : "myftpd";
    const args = [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
      "-days", String(days), "-subj", `/CN=${cn}/O=myftpd`, "-addext", `subjectAltName=${subjectAltNames(host).join(",")}`,
      "-keyout", tmpKey, "-out", tmpCert,
    ];
    try {
      await run("openssl", args, { timeout: 30_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === "ENOENT") {
        throw new Error("the openssl program was not found; install it (e.g. apt-get install openssl) or give serve --tls-cert and --tls-key");
      }
      throw new Error(`openssl failed: ${(e.stderr ?? e.message).trim()}`);
    }
    await fsp.chmod(tmpKey, 0o600);
    await fsp.rename(tmpKey, files.key);
    await fsp.rename(tmpCert, files.cert);
  } finally {
    await fsp.rm(tmpKey, { force: true });
    await fsp.rm(tmpCert, { force: true });
  }
  return [
    `wrote ${files.cert} (self-signed for ${host}, valid ${days} days)`,
    `wrote ${files.key} (mode 0600)`,
    "myftpd serve uses them when no --tls-cert/--tls-key is given",
  ].join("\n");
}

/**
 * The certificate and key serve should use: both flags, or neither flag and DATA/tls/ holding both files; null
 * when there is no TLS. Checks that they load and match, so a bad file stops the start-up with a clear message.
 */
export function loadTls(dataDir: string, certFlag: string | null, keyFlag: string | null): LoadedTls | null {
  let files: TlsFiles;
  if (certFlag || keyFlag) {
    if (!certFlag || !keyFlag) throw new ConfigError("--tls-cert and --tls-key go together: give both or neither");
    files = { cert: certFlag, key: keyFlag };
  } else {
    files = defaultTlsFiles(dataDir);
    const hasCert = existsSync(files.cert);
    const hasKey = existsSync(files.key);
    if (!hasCert && !hasKey) return null;
    // Half a pair is a mistake (a copy that went wrong, a key removed): starting without TLS would go unnoticed.
    if (!hasCert || !hasKey) {
      const [there, missing] = hasCert ? [files.cert, files.key] : [files.key, files.cert];
      throw new ConfigError(
        `${there} is there but ${missing} is missing, so TLS cannot be set up: put the missing file back, run "myftpd cert --force" for a new pair, or remove ${there} to run without TLS`,
      );
    }
  }
  let material: { cert: Buffer; key: Buffer };
  try {
    material = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
  } catch (err) {
    throw new ConfigError(`cannot read TLS certificate or key: ${(err as Error).message}`);
  }
  try {
    createSecureContext({ cert: material.cert, key: material.key });
    // OpenSSL checks the key against the certificate only when both are of one type: an RSA key beside an EC
    // certificate (or the reverse) loads without a word, and then every handshake fails.
    if (!new X509Certificate(material.cert).checkPrivateKey(createPrivateKey(material.key))) {
      throw new Error("the key does not belong to the certificate");
    }
  } catch (err) {
    throw new ConfigError(`cannot use TLS certificate ${files.cert} with key ${files.key}: ${(err as Error).message}`);
  }
  return { ...files, material };
}

/** True when the key file can be read by others than its owner. */
export function keyTooOpen(keyFile: string): boolean {
  try {
    return (statSync(keyFile).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}
