import { IvfRabitqIndex } from './dist/src/index.js';
const dim=16,n=1_000_000; const base=new Float32Array(n*dim).map(()=>Math.random());
let last=performance.now(), gaps=[]; const t0=performance.now();
const timer=setInterval(()=>{const t=performance.now(); if(t-last>30) gaps.push([Math.round(last-t0), Math.round(t-last)]); last=t;},5);
const idx=await IvfRabitqIndex.build(base,{dim,numClusters:1000,threads:1,onProgress:()=>{}});
clearInterval(timer); console.log('total', Math.round(performance.now()-t0), 'gaps', JSON.stringify(gaps)); 
