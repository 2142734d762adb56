// ES module handler: 'sharp' resolves through node_modules -> /opt/nodejs/node_modules (the layer).
import sharp from 'sharp';

export const handler = async (event) => {
  const input = Buffer.from(event.imageBase64, 'base64');
  const out = await sharp(input).resize({ width: 800 }).webp().toBuffer();
  return { width: 800, bytes: out.length, imageBase64: out.toString('base64') };
};
