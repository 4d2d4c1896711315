// Copies the page's libraries, as npm ci installed them, into api/static/vendor/ (served at
// /static/vendor/, not in git): files the browser loads as they are, with their licences.
import { copyFileSync, mkdirSync } from "node:fs";

const out = new URL("../api/static/vendor/", import.meta.url);
const files = {
  // tsyringe, which @peculiar/x509 uses, needs the Reflect metadata API: loaded first.
  "reflect-metadata/Reflect.js": "reflect-metadata.js",
  "reflect-metadata/LICENSE": "reflect-metadata.LICENSE",
  "@peculiar/x509/build/x509.js": "x509.js",
  "@peculiar/x509/LICENSE": "x509.LICENSE",
};
mkdirSync(out, { recursive: true });
for (const [from, to] of Object.entries(files)) {
  copyFileSync(new URL("node_modules/" + from, import.meta.url), new URL(to, out));
}
