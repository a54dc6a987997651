// Per-call benchmark: Frida Interceptor.attach on foo() with a one-line onEnter.
// The count is printed when the program calls exit(); the short pause lets Frida deliver the message before
// the process is gone (without it the line is often lost when stdout is a pipe).
let calls = 0;
Interceptor.attach(Process.getModuleByName('libbench.so').getExportByName('foo'), { onEnter(args) { calls++; } });
Interceptor.attach(Module.getGlobalExportByName('exit'), {
  onEnter(args) { console.log('hooked_calls=' + calls); Thread.sleep(0.05); }
});
