#!/usr/bin/env python3
"""tests/attest/tunnel/snp_fake_tsm.py: a fake configfs-tsm report entry of
a SEV-SNP guest, for the tsm provider (attest/quote/provider.h): ENTRY/
provider "sev_guest", generation, inblob, auxblob (AMD's certificate table
of the simulated SNP TEE in HW: VCEK, ASK, ARK, DER, RFC 4122 GUIDs) and
outblob, a FIFO served here as the kernel would: each time a reader opens
it, the report for the 64 bytes in inblob, signed by the simulated SNP TEE
(`ra-quote sim --snp`). Runs until killed.

Usage: snp_fake_tsm.py ENTRY RA_QUOTE HW"""
import base64, os, struct, subprocess, sys, tempfile, uuid

entry, ra_quote, hw = sys.argv[1:4]
os.makedirs(entry)
tmp = tempfile.mkdtemp()
out = os.path.join(tmp, "r.bin")


def sim(report_data):
    subprocess.run([ra_quote, "sim", "--snp", "--dir", hw, "--report-data", report_data.hex(),
                    "--out", out], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out, "rb") as f:
        return f.read()


sim(bytes(64))  # creates the hierarchy in HW


def ders(path):
    text = open(path).read()
    blocks = text.split("-----BEGIN CERTIFICATE-----")[1:]
    return [base64.b64decode(b.split("-----END CERTIFICATE-----")[0]) for b in blocks]


vcek = ders(os.path.join(hw, "snp-vcek.pem"))[0]
ask, ark = ders(os.path.join(hw, "snp-cert-chain.pem"))
certs = [("63da758d-e664-4564-adc5-f4b93be8accd", vcek), ("4ab7b379-bbac-4fe4-a02f-05aef327c782", ask),
         ("c0b406a4-a803-4952-9743-3fb6014cd0ae", ark)]
off = 24 * (len(certs) + 1)
table, data = b"", b""
for g, der in certs:
    table += uuid.UUID(g).bytes + struct.pack("<II", off + len(data), len(der))
    data += der
table += bytes(24)

for name, content in (("provider", b"sev_guest\n"), ("generation", b"1\n"), ("inblob", b""),
                      ("auxblob", table + data)):
    with open(os.path.join(entry, name), "wb") as f:
        f.write(content)
os.mkfifo(os.path.join(entry, "outblob"))

last = None
while True:
    with open(os.path.join(entry, "outblob"), "wb") as fifo:  # blocks until the provider reads
        with open(os.path.join(entry, "inblob"), "rb") as f:
            rd = f.read()
        # a reader still open from the last round (it has not seen EOF yet)
        # must not get a second report: every request has a fresh inblob
        if len(rd) == 64 and rd != last:
            fifo.write(sim(rd))
            last = rd
