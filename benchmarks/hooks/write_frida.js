// dd workload: Frida Interceptor.attach on write() with a one-line onEnter (the count is printed at exit, with
// a 50 ms pause so that Frida delivers it: that pause is part of the measured time).
let calls = 0;
Interceptor.attach(Module.getGlobalExportByName('write'), { onEnter(args) { calls++; } });
Interceptor.attach(Module.getGlobalExportByName('exit'), {
  onEnter(args) { console.log('hooked_calls=' + calls); Thread.sleep(0.05); }
});
