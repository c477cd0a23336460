// Kafka's own request parser, as an oracle for the gateway's request reader (lab/differential.py).
//
// `java ParserOracle versions` prints one JSON line: the request versions this Kafka defines, per API key
// [key, oldest, latest stable, latest including unstable].
//
// `java ParserOracle` reads frames from stdin: int8 kind (0 a request, 1 a response), int16 api key, int16 api
// version, int32 length, then that many bytes of message BODY (no header). For each it writes one JSON line:
//   {"ok": true, "end": <bytes read>, "json": <the message by Kafka's generated JSON converter>,
//    "unknown_tags": [[tag, size], ...]}
//   {"ok": false, "error": "<exception>"}
// A request body is read exactly as a broker reads it: ApiKeys.forId(key).messageType.newRequest().read(...); a
// response body as a client does (newResponse()). The unknown tagged fields are the top level's: the tags this
// version does not define, which Kafka's generated readers keep aside (KIP-482) and its JSON converter leaves out.
// Which fields hold names is the Python side's business (it walks the JSON with the gateway's specs).
// Compiled by lab/differential.py against a Kafka libs dir; needs kafka-clients and jackson.

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.types.RawTaggedField;

public final class ParserOracle {
    private static final ObjectMapper MAPPER = new ObjectMapper();
    private static final Map<Class<?>, Method> CONVERTERS = new HashMap<>();

    public static void main(String[] args) throws Exception {
        OutputStream out = new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16);
        if (args.length > 0 && args[0].equals("versions")) {
            ArrayNode apis = MAPPER.createArrayNode();
            for (ApiKeys key : ApiKeys.values()) {
                if (!key.hasValidVersion()) continue;
                apis.add(MAPPER.createArrayNode().add(key.id).add(key.oldestVersion())
                        .add(key.latestVersion(false)).add(key.latestVersion(true)));
            }
            ObjectNode result = MAPPER.createObjectNode();
            result.set("apis", apis);
            out.write(MAPPER.writeValueAsBytes(result));
            out.write('\n');
            out.flush();
            return;
        }
        DataInputStream in = new DataInputStream(new BufferedInputStream(System.in, 1 << 16));
        while (true) {
            boolean response;
            try {
                response = in.readByte() == 1;
            } catch (EOFException end) {
                break;
            }
            short key = in.readShort();
            short version = in.readShort();
            byte[] body = new byte[in.readInt()];
            in.readFully(body);
            out.write(MAPPER.writeValueAsBytes(parse(response, key, version, body)));
            out.write('\n');
            if (in.available() == 0) out.flush();
        }
        out.flush();
    }

    private static ObjectNode parse(boolean response, short key, short version, byte[] body) {
        ObjectNode result = MAPPER.createObjectNode();
        ApiMessage message;
        ByteBuffer buffer = ByteBuffer.wrap(body);
        try {
            message = response ? ApiKeys.forId(key).messageType.newResponse()
                    : ApiKeys.forId(key).messageType.newRequest();
            message.read(new ByteBufferAccessor(buffer), version);
        } catch (Throwable refused) {
            result.put("ok", false);
            result.put("error", describe(refused));
            return result;
        }
        result.put("ok", true);
        result.put("end", buffer.position());
        ArrayNode unknown = result.putArray("unknown_tags");
        for (RawTaggedField field : message.unknownTaggedFields()) {
            unknown.add(MAPPER.createArrayNode().add(field.tag()).add(field.size()));
        }
        try {
            result.set("json", toJson(message, version));
        } catch (Throwable failed) {  // parsed, but not convertible: the harness counts it apart
            Throwable cause = failed instanceof InvocationTargetException ? failed.getCause() : failed;
            result.put("json_error", describe(cause));
        }
        return result;
    }

    private static JsonNode toJson(ApiMessage message, short version) throws Exception {
        Method write = CONVERTERS.get(message.getClass());
        if (write == null) {
            Class<?> converter = Class.forName(message.getClass().getName() + "JsonConverter");
            write = converter.getMethod("write", message.getClass(), short.class);
            CONVERTERS.put(message.getClass(), write);
        }
        return (JsonNode) write.invoke(null, message, version);
    }

    private static String describe(Throwable error) {
        String text = error.getClass().getSimpleName() + ": " + error.getMessage();
        return text.length() > 300 ? text.substring(0, 300) : text;
    }
}
