// Runs a Python script under real MicroPython (its WebAssembly port) with packages beside it.
//
//     node run.mjs SCRIPT.py [PACKAGE_DIR | FILE.py]...
//
// Each PACKAGE_DIR (e.g. firmware/room_node/roomnode) is copied, its .py files only, into the
// port's in-memory file system under /lib, which is on sys.path, and so is each FILE.py;
// SCRIPT.py then runs as __main__. What it prints goes to stdout; an uncaught Python
// exception is printed on stderr and the exit status is 1.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [script, ...packages] = process.argv.slice(2);
if (!script) {
  process.stderr.write("usage: node run.mjs SCRIPT.py [PACKAGE_DIR | FILE.py]...\n");
  process.exit(2);
}
const mp = await loadMicroPython({
  heapsize: 8 * 1024 * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
mp.FS.mkdir("/lib");
for (const dir of packages) {
  const target = join("/lib", basename(dir));
  if (!statSync(dir).isDirectory()) {
    mp.FS.writeFile(target, readFileSync(dir));
    continue;
  }
  mp.FS.mkdir(target);
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".py"))) {
    mp.FS.writeFile(join(target, name), readFileSync(join(dir, name)));
  }
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')");
  mp.runPython(readFileSync(script, "utf8"));
} catch (err) {
  process.stderr.write(`${err.message ?? err}\n`);
  process.exit(1);
}
